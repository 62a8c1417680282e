"""The audit checkpoint signer: one Ed25519 key in a PEM file in the data dir (mode 0600).

Independent of the credential issuer's JWT keyring on purpose: it only signs checkpoints.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit import b64url

__all__ = ["Ed25519FileSigner", "key_id", "load_public_keys", "DEFAULT_KEY_FILE"]

DEFAULT_KEY_FILE = "audit_signing_key.pem"


def key_id(public_key: Ed25519PublicKey) -> str:
    """A stable id derived from the public key itself."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "audit-" + b64url(hashlib.sha256(raw).digest())[:16]


class Ed25519FileSigner:
    """Creates the key file on first use, loads it afterwards."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / DEFAULT_KEY_FILE
        self._key = self._load_or_create()
        self.public_key = self._key.public_key()
        self.kid = key_id(self.public_key)

    def _load_or_create(self) -> Ed25519PrivateKey:
        if self.path.exists():
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("the audit signing key file does not hold an Ed25519 key")
            return key
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        return key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {self.kid: self.public_key}

    def __repr__(self) -> str:
        return f"Ed25519FileSigner(kid={self.kid!r})"


def load_public_keys(data_dir: str | os.PathLike[str]) -> dict[str, Ed25519PublicKey]:
    """The verification keys found in a data dir (never creates a key)."""
    path = Path(data_dir) / DEFAULT_KEY_FILE
    if not path.exists():
        return {}
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        return {}
    pub = key.public_key()
    return {key_id(pub): pub}
