"""Single use of a call token's ``jti``: an in-process store and a Redis store shared by replicas.

``first_use(jti, exp)`` is True exactly once per ``jti``; the record is kept until the token has
expired (plus the verifier's leeway), after which the expiry check refuses the token anyway.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from gateway.clock import Clock, SystemClock
from gateway.ports import StoreUnavailable

__all__ = ["ReplayStore", "MemoryReplayStore", "RedisReplayStore", "DEFAULT_RETAIN_S"]

DEFAULT_RETAIN_S = 60.0


@runtime_checkable
class ReplayStore(Protocol):
    async def first_use(self, jti: str, exp: float) -> bool:
        """Record ``jti``; True if it was not seen before. Raises StoreUnavailable on failure."""
        ...


class MemoryReplayStore:
    """In-process store: enough for one verifier process."""

    def __init__(self, clock: Clock | None = None, *, retain_s: float = DEFAULT_RETAIN_S,
                 purge_every: int = 1024) -> None:
        self._clock = clock or SystemClock()
        self._retain_s = retain_s
        self._seen: dict[str, float] = {}
        self._purge_every = purge_every
        self._since_purge = 0

    async def first_use(self, jti: str, exp: float) -> bool:
        return self.first_use_sync(jti, exp)

    def first_use_sync(self, jti: str, exp: float) -> bool:
        now = self._clock.now()
        self._since_purge += 1
        if self._since_purge >= self._purge_every:
            self._purge(now)
        until = self._seen.get(jti)
        if until is not None and until > now:
            return False
        self._seen[jti] = max(float(exp), now) + self._retain_s
        return True

    async def seen(self, jti: str) -> bool:
        """Whether ``jti`` was used (the ``used`` callable of introspection)."""
        until = self._seen.get(jti)
        return until is not None and until > self._clock.now()

    def __len__(self) -> int:
        return len(self._seen)

    def _purge(self, now: float) -> None:
        self._since_purge = 0
        self._seen = {j: u for j, u in self._seen.items() if u > now}


class RedisReplayStore:
    """``SET key 1 NX PX ttl``: atomic, shared by every replica using the same Redis and prefix."""

    def __init__(self, redis: Any, prefix: str = "jitgate:jti:", *, clock: Clock | None = None,
                 retain_s: float = DEFAULT_RETAIN_S) -> None:
        if isinstance(redis, str):
            import redis.asyncio as aioredis  # optional extra: jitgate[redis]

            redis = aioredis.from_url(redis)
            self._owned = True
        else:
            self._owned = False
        self._redis = redis
        self._prefix = prefix
        self._clock = clock or SystemClock()
        self._retain_s = retain_s

    async def first_use(self, jti: str, exp: float) -> bool:
        ttl_ms = max(1000, int((float(exp) - self._clock.now() + self._retain_s) * 1000))
        try:
            created = await self._redis.set(self._prefix + jti, b"1", nx=True, px=ttl_ms)
        except Exception as exc:  # any client/network error: fail closed, without its text
            raise StoreUnavailable("replay store unavailable") from exc
        return bool(created)

    async def seen(self, jti: str) -> bool:
        """Whether ``jti`` was used (the ``used`` callable of introspection)."""
        try:
            return bool(await self._redis.exists(self._prefix + jti))
        except Exception as exc:
            raise StoreUnavailable("replay store unavailable") from exc

    async def aclose(self) -> None:
        if self._owned:
            await self._redis.aclose()
