"""The gateway's Ed25519 signing keys: one active key, older keys published until their tokens expire.

On disk (``Keyring.open(directory)``) every key is a PKCS#8 PEM file ``<kid>.pem`` (mode 0600) and
``keyring.json`` holds the metadata (active kid, created_at and not_after of each key). A key id is
the RFC 7638 thumbprint of the public key, so it names the key and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.clock import Clock

__all__ = ["Keyring", "SigningKey", "ROTATION_LEEWAY_S", "b64url", "b64url_decode", "jwk_thumbprint"]

ROTATION_LEEWAY_S = 60.0
_META = "keyring.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwk_thumbprint(x: str) -> str:
    """RFC 7638 thumbprint of an Ed25519 OKP key (required members, lexicographic order)."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"),
                           sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(slots=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    x: str
    created_at: float
    not_after: float | None = None  # None: active or not yet retired

    @classmethod
    def generate(cls, created_at: float) -> "SigningKey":
        return cls.from_private(Ed25519PrivateKey.generate(), created_at)

    @classmethod
    def from_private(cls, key: Ed25519PrivateKey, created_at: float,
                     not_after: float | None = None) -> "SigningKey":
        public = key.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = b64url(raw)
        return cls(jwk_thumbprint(x), key, public, x, created_at, not_after)

    def published(self, now: float) -> bool:
        return self.not_after is None or now < self.not_after

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "alg": "EdDSA",
                "use": "sig"}

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


class Keyring:
    """Signing keys with rotation. Use ``open`` (persisted) or ``ephemeral`` (tests)."""

    def __init__(self, keys: list[SigningKey], active_kid: str, clock: Clock,
                 directory: Path | None = None) -> None:
        self._keys: dict[str, SigningKey] = {k.kid: k for k in keys}
        if active_kid not in self._keys:
            raise ValueError("active key missing from the keyring")
        self.active_kid = active_kid
        self._clock = clock
        self._directory = directory

    # construction -----------------------------------------------------------------------

    @classmethod
    def ephemeral(cls, clock: Clock) -> "Keyring":
        key = SigningKey.generate(clock.now())
        return cls([key], key.kid, clock)

    @classmethod
    def open(cls, directory: Path, clock: Clock) -> "Keyring":
        """Load the keyring from ``directory`` (e.g. ``<data_dir>/keys``); create the first key."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        meta_path = directory / _META
        if not meta_path.exists():
            key = SigningKey.generate(clock.now())
            ring = cls([key], key.kid, clock, directory)
            ring._write_key(key)
            ring._save_meta()
            return ring
        meta = json.loads(meta_path.read_text("utf-8"))
        keys: list[SigningKey] = []
        for kid, info in meta["keys"].items():
            pem = (directory / f"{kid}.pem").read_bytes()
            private = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError("keyring holds a key that is not Ed25519")
            key = SigningKey.from_private(private, float(info["created_at"]), info.get("not_after"))
            if key.kid != kid:
                raise ValueError("keyring metadata does not match its key files")
            keys.append(key)
        return cls(keys, meta["active"], clock, directory)

    # use --------------------------------------------------------------------------------

    @property
    def active(self) -> SigningKey:
        return self._keys[self.active_kid]

    def sign(self, data: bytes) -> tuple[str, bytes]:
        key = self.active
        return key.kid, key.private_key.sign(data)

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for ``kid`` if it is still published, else None."""
        key = self._keys.get(kid)
        if key is None or not key.published(self._clock.now()):
            return None
        return key.public_key

    def kids(self) -> list[str]:
        now = self._clock.now()
        return [k.kid for k in self._keys.values() if k.published(now)]

    def jwks(self) -> dict[str, Any]:
        now = self._clock.now()
        return {"keys": [k.jwk() for k in self._keys.values() if k.published(now)]}

    def rotate(self, max_token_ttl_s: float, leeway_s: float = ROTATION_LEEWAY_S) -> str:
        """Make a new active key; the old one stays published until its tokens have expired."""
        now = self._clock.now()
        old = self.active
        old.not_after = now + float(max_token_ttl_s) + float(leeway_s)
        new = SigningKey.generate(now)
        self._keys[new.kid] = new
        if self._directory is not None:
            self._write_key(new)
        self.active_kid = new.kid
        self.prune(save=False)
        self._save_meta()
        return new.kid

    def prune(self, *, save: bool = True) -> list[str]:
        """Forget retired keys whose tokens can no longer be valid; returns their kids."""
        now = self._clock.now()
        gone = [kid for kid, k in self._keys.items()
                if kid != self.active_kid and not k.published(now)]
        for kid in gone:
            del self._keys[kid]
            if self._directory is not None:
                (self._directory / f"{kid}.pem").unlink(missing_ok=True)
        if gone and save:
            self._save_meta()
        return gone

    # persistence ------------------------------------------------------------------------

    def _write_key(self, key: SigningKey) -> None:
        if self._directory is None:
            return
        pem = key.private_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        self._atomic_write(self._directory / f"{key.kid}.pem", pem)

    def _save_meta(self) -> None:
        if self._directory is None:
            return
        meta = {"active": self.active_kid,
                "keys": {k.kid: {"created_at": k.created_at, "not_after": k.not_after}
                         for k in self._keys.values()}}
        self._atomic_write(self._directory / _META, json.dumps(meta, indent=2).encode("utf-8"))

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
