"""RFC 8785 canonical JSON and the digests built on it (arguments, audit records)."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson
import rfc8785

__all__ = ["canonical_json", "sha256_hex", "args_digest"]


_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> Any:
    """`value` with integral floats as ints, or raise _Slow if json.dumps could differ from JCS."""
    t = type(value)
    if t is str or value is None or t is bool:
        return value
    if t is int:
        if -_SAFE_INT <= value <= _SAFE_INT:
            return value
        raise _Slow
    if t is float:
        if value.is_integer() and abs(value) < 1e16:
            return int(value)
        if math.isfinite(value) and 1e-4 <= abs(value) < 1e16:
            return value
        raise _Slow
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or not (k.isascii() or max(k) < "\U00010000"):
                raise _Slow
            tv = type(v)  # strings and None, the bulk of a record, without a call
            out[k] = v if tv is str or v is None else _plain(v)
        return out
    if t is list or t is tuple:
        return [v if type(v) is str else _plain(v) for v in value]
    raise _Slow


class _Slow(Exception):
    pass


def canonical_json(value: Any) -> bytes:
    """canonical_json (RFC 8785), with a fast path through orjson.

    For str keys within the BMP (where code-point order is UTF-16 order), safe integers and
    floats printed the same way by the shortest round-trip form and ECMAScript (integral below
    1e16, or between 1e-4 and 1e16), orjson with sorted keys emits exactly the JCS bytes (the
    same bytes as json.dumps with sorted keys and no ASCII escaping, several times faster);
    anything else (lone surrogates, integers beyond 2**53, other types) takes rfc8785.
    tests/storage/test_audit_canonical.py checks the fast path against the reference.
    """
    try:
        return orjson.dumps(_plain(value), option=orjson.OPT_SORT_KEYS)
    except (_Slow, ValueError, TypeError, RecursionError):  # orjson's errors are TypeErrors
        return rfc8785.dumps(value)




def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def args_digest(arguments: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of a call's arguments."""
    return sha256_hex(canonical_json(arguments if arguments is not None else {}))
