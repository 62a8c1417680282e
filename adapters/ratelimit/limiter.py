"""`RateLimiter` on `limits.aio`: moving windows from policy plus retry backoff after denials.

In process (`MemoryStorage`) by default; Redis (`RedisStorage("async+redis://...",
implementation="redispy")`) when configured, so every replica shares the windows and the denial
history. A storage failure throttles (fail closed) with code `rate_limited` rather than allowing.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import MemoryStorage as SyncMemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter as SyncSlidingWindow

from gateway.clock import Clock, SystemClock
from gateway.ids import new_id
from gateway.model import ToolCall
from gateway.ratelimit import (
    OK,
    DenialHistory,
    RateLimitRule,
    RateVerdict,
    RetryBackoff,
    near_args_digest,
    rate_limit_rules,
    retry_key,
)

__all__ = ["LimitsRateLimiter", "MemoryDenials", "RedisDenials", "memory_rate_limiter",
           "redis_rate_limiter"]

log = logging.getLogger("jitgate.ratelimit")

FAIL_CLOSED_RETRY_S = 1.0


class Denials(Protocol):
    async def add(self, key: str, now: float, window_s: float) -> int: ...

    async def times(self, key: str, now: float, window_s: float) -> list[float]: ...

    async def clear(self, key: str) -> None: ...


class MemoryDenials:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._h = DenialHistory(max_keys=max_keys)

    def empty(self) -> bool:
        """Nothing denied anywhere: no retry key needs computing (the common case)."""
        return not self._h._times

    async def add(self, key: str, now: float, window_s: float) -> int:
        return self._h.add(key, now, window_s)

    async def times(self, key: str, now: float, window_s: float) -> list[float]:
        return self._h.get(key)

    async def clear(self, key: str) -> None:
        self._h.clear(key)


class RedisDenials:
    """Denial times in one sorted set per retry key (score = time), shared by every replica."""

    def __init__(self, client: Any, prefix: str = "jitgate:retry:") -> None:
        self._r = client
        self._p = prefix

    async def add(self, key: str, now: float, window_s: float) -> int:
        k = self._p + key
        async with self._r.pipeline(transaction=True) as p:
            p.zremrangebyscore(k, "-inf", now - window_s)
            p.zadd(k, {f"{now!r}:{new_id('den')}": now})  # one member per denial
            p.zcard(k)
            p.expire(k, max(1, math.ceil(window_s)))
            res = await p.execute()
        return int(res[2])

    async def times(self, key: str, now: float, window_s: float) -> list[float]:
        rows = await self._r.zrangebyscore(self._p + key, now - window_s, "+inf", withscores=True)
        return [float(s) for _, s in rows]

    async def clear(self, key: str) -> None:
        await self._r.delete(self._p + key)


class _InProcessWindows:
    """limits' synchronous sliding windows behind the async strategy's interface: in process
    there is nothing to wait for, and the asyncio storage cost half as much again per hit."""

    def __init__(self) -> None:
        self._storage = SyncMemoryStorage()
        self._windows = SyncSlidingWindow(self._storage)

    async def hit(self, item: Any, *identifiers: str) -> bool:
        return self._windows.hit(item, *identifiers)

    async def get_window_stats(self, item: Any, *identifiers: str) -> Any:
        return self._windows.get_window_stats(item, *identifiers)

    async def reset(self) -> None:
        self._storage.reset()


class LimitsRateLimiter:
    """Implements `gateway.ratelimit.RateLimiter`."""

    def __init__(self, storage: Storage | _InProcessWindows, denials: Denials,
                 clock: Clock | None = None, backoff: RetryBackoff | None = None) -> None:
        self._storage = storage
        self._windows: Any = (storage if isinstance(storage, _InProcessWindows)
                              else SlidingWindowCounterRateLimiter(storage))
        self._denials = denials
        self._clock = clock or SystemClock()
        self._backoff = backoff
        self._items: dict[tuple[int, int], RateLimitItemPerSecond] = {}
        self._rules_cache: tuple[int, list[RateLimitRule]] | None = None
        self._backoff_cache: tuple[Any, RetryBackoff] | None = None
        self._current: RetryBackoff | None = None
        self._last_key: tuple[ToolCall, str] | None = None

    def _rules(self, policy: Any) -> list[RateLimitRule]:
        cached = self._rules_cache
        if cached is not None and cached[0] == id(policy):
            return cached[1]
        rules = rate_limit_rules(policy)
        self._rules_cache = (id(policy), rules)
        return rules

    def _policy_backoff(self, policy: Any) -> RetryBackoff:
        if self._backoff is not None:
            return self._backoff
        # parsed once per policy object (policies are immutable; a reload swaps the object)
        cached = self._backoff_cache
        if cached is not None and cached[0] is policy:
            return cached[1]
        backoff = RetryBackoff.from_policy(policy)
        self._backoff_cache = (policy, backoff)
        return backoff

    def _item(self, rule: RateLimitRule) -> RateLimitItemPerSecond:
        k = (rule.limit, max(1, math.ceil(rule.window_s)))
        item = self._items.get(k)
        if item is None:
            item = self._items[k] = RateLimitItemPerSecond(k[0], k[1], namespace="JITGATE")
        return item

    async def check(self, call: ToolCall, grant_id: str | None, policy: Any) -> RateVerdict:
        now = self._clock.now()
        backoff = self._current = self._policy_backoff(policy)
        try:
            key = None if self._no_denials() else self._retry_key(call)
            times = await self._denials.times(key, now, backoff.window_s) if key else []
            if key and backoff.retry_after(times, now) is not None:
                # the throttled retry counts as one more denial, and the answer says so: after
                # `retry_after` the next attempt passes the backoff (honest, and growing)
                n = await self._denials.add(key, now, backoff.window_s)
                return RateVerdict(backoff.delay(n), "retry_backoff", "retry_backoff")
            for rule in self._rules(policy):
                if not rule.applies(call.tool):
                    continue
                item = self._item(rule)
                ident = rule.key(call, grant_id)
                if not await self._windows.hit(item, ident):
                    stats = await self._windows.get_window_stats(item, ident)
                    # limits counts on its own wall clock: reset_time is epoch seconds
                    wait = max(0.001, stats.reset_time - time.time())
                    return RateVerdict(wait, "rate_limited", rule.id)
        except Exception as exc:  # fail closed: a broken counter throttles, never allows
            log.warning("rate limit storage failed: %s", type(exc).__name__)
            return RateVerdict(FAIL_CLOSED_RETRY_S, "rate_limited", "rate_limit_unavailable")
        return OK

    async def record_denial(self, call: ToolCall, args_digest: str | None = None,
                            policy: Any = None) -> int:
        backoff = self._backoff or (RetryBackoff.from_policy(policy) if policy is not None
                                    else self._current or RetryBackoff())
        return await self._denials.add(self._retry_key(call), self._clock.now(),
                                       backoff.window_s)

    async def record(self, call: ToolCall, decision: Any) -> None:
        """After a decision: a deny starts or grows the backoff; an allow clears it. (Throttled
        retries are counted by `check` itself.)"""
        effect = getattr(getattr(decision, "effect", None), "value", "")
        if effect == "allow":
            await self.record_allow(call)
        elif effect == "deny":
            await self.record_denial(call)

    async def record_allow(self, call: ToolCall, args_digest: str | None = None) -> None:
        if not self._no_denials():
            await self._denials.clear(self._retry_key(call))

    def _no_denials(self) -> bool:
        empty = getattr(self._denials, "empty", None)
        return bool(empty and empty())

    def _retry_key(self, call: ToolCall) -> str:
        """The retry key of a call, computed once for check() and record() of the same call."""
        last = self._last_key
        if last is not None and last[0] is call:
            return last[1]
        key = retry_key(call, near_args_digest(call.arguments))
        self._last_key = (call, key)
        return key

    async def reset(self) -> None:
        await self._storage.reset()


def memory_rate_limiter(clock: Clock | None = None,
                        backoff: RetryBackoff | None = None) -> LimitsRateLimiter:
    return LimitsRateLimiter(_InProcessWindows(), MemoryDenials(), clock, backoff)


def redis_rate_limiter(url: str, clock: Clock | None = None, backoff: RetryBackoff | None = None,
                       prefix: str = "jitgate") -> LimitsRateLimiter:
    """`url` is redis://host:port/db; windows via limits, denial history in sorted sets."""
    import redis.asyncio as aioredis

    scheme_url = url.replace("redis://", "async+redis://", 1) if url.startswith("redis://") else url
    storage = RedisStorage(scheme_url, implementation="redispy", key_prefix=f"{prefix}:limits")
    client = aioredis.Redis.from_url(url.replace("async+redis://", "redis://", 1))
    return LimitsRateLimiter(storage, RedisDenials(client, prefix=f"{prefix}:retry:"), clock, backoff)
