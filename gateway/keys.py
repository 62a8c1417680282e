"""Agent keys: shown once, stored only as hashes, compared in constant time.

A key reads `jgk_<key_id>_<secret>`; the key id finds the record, the SHA-256 of the secret is
compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from .clock import Clock
from .model import Principal, Role
from .ports import KeyRecord, KeyStore

__all__ = ["NewKey", "create_key", "parse_key", "KeyAuthenticator", "KEY_PREFIX"]

KEY_PREFIX = "jgk_"


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    secret_key: str  # the full key; returned once, never stored

    def __repr__(self) -> str:
        return f"NewKey(key_id={self.record.key_id!r})"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(role: Role, name: str, clock: Clock, *, principal_id: str | None = None,
               attributes: dict | None = None) -> NewKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    pid = principal_id or f"{role.value}:{name or key_id}"
    principal = Principal(id=pid, role=role, name=name or key_id, attributes=attributes or {})
    record = KeyRecord(key_id=key_id, principal=principal, key_hash=_hash(secret),
                       created_at=clock.now())
    return NewKey(record=record, secret_key=f"{KEY_PREFIX}{key_id}_{secret}")


def parse_key(presented: str) -> tuple[str, str] | None:
    if not presented.startswith(KEY_PREFIX):
        return None
    rest = presented[len(KEY_PREFIX):]
    key_id, sep, secret = rest.partition("_")
    if not sep or len(key_id) != 16 or not secret or len(presented) > 256:
        return None
    return key_id, secret


# A cached key record is read again once it is this old, so a key disabled anywhere (the CLI,
# another process or replica sharing the store) is refused everywhere within this long.
KEY_RECHECK_S = 1.0
_CACHE_MAX = 10_000


class KeyAuthenticator:
    """Resolves a presented agent key to its principal, caching records (not secrets) for at
    most KEY_RECHECK_S."""

    def __init__(self, store: KeyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyRecord]] = {}

    async def authenticate(self, presented: str) -> Principal | None:
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        now = self._clock.now()
        hit = self._cache.get(key_id)
        if hit is not None and 0 <= now - hit[0] < KEY_RECHECK_S:
            record = hit[1]
        else:
            found = await self._store.get(key_id)
            if found is None:
                self._cache.pop(key_id, None)
                return None
            if len(self._cache) >= _CACHE_MAX and key_id not in self._cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key_id] = (now, found)
            record = found
        if record.disabled:
            return None
        if not hmac.compare_digest(_hash(secret), record.key_hash):
            return None
        return record.principal

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)
