"""RFC 8785 canonical JSON and the digests built on it (arguments, audit records)."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

__all__ = ["canonical_json", "sha256_hex", "args_digest"]


def canonical_json(value: Any) -> bytes:
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def args_digest(arguments: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of a call's arguments."""
    return sha256_hex(canonical_json(arguments if arguments is not None else {}))
