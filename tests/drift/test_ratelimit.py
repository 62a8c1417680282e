import os
import uuid

import pytest

from adapters.ratelimit import memory_rate_limiter, redis_rate_limiter
from gateway.clock import FakeClock
from gateway.model import Decision, Effect
from gateway.ratelimit import RetryBackoff, near_args_digest, rate_limit_rules
from policies.engine import RateLimitSpec
from tests.conftest import service_missing

from .fixtures import call, policy


def deny(c, code="policy_deny"):
    return Decision("dec", Effect.DENY, code, (), (), "rev", c.tool, c.agent.id, "d")


def test_backoff_grows_exponentially_and_lapses():
    b = RetryBackoff(base_s=1, factor=2, max_s=10, window_s=100)
    assert [b.delay(n) for n in range(1, 6)] == [1, 2, 4, 8, 10]
    assert b.retry_after([], 0) is None
    assert b.retry_after([0.0], 0.5) == pytest.approx(0.5)
    assert b.retry_after([0.0], 1.0) is None
    assert b.retry_after([0.0, 1.0, 2.0], 2.0) == pytest.approx(4.0)
    assert b.retry_after([0.0, 1.0, 2.0], 200.0) is None  # outside the window


def test_near_same_arguments_collide():
    assert near_args_digest({"to": "Bob ", "n": 1.0001}) == near_args_digest({"n": 1, "to": "bob"})
    assert near_args_digest({"to": "bob"}) != near_args_digest({"to": "eve"})


def test_rules_from_policy_specs():
    rules = rate_limit_rules(policy(rate_limits=[RateLimitSpec("a", "agent", "20/second"),
                                                 RateLimitSpec("t", "tool", "5 per 2 minutes", "fs.*")]))
    assert (rules[0].limit, rules[0].window_s, rules[0].per) == (20, 1.0, ("agent",))
    assert (rules[1].limit, rules[1].window_s) == (5, 120.0)
    assert rules[1].applies("fs.read") and not rules[1].applies("web.fetch")


async def test_retry_storm_is_throttled_with_growing_retry_after():
    clock = FakeClock()
    rl = memory_rate_limiter(clock, RetryBackoff(base_s=1, factor=2, max_s=60, window_s=600))
    pol = policy()
    c = call("bank.send_money", {"recipient": "XX00", "amount": 10})
    assert (await rl.check(c, "grt_1", pol)).retry_after is None
    await rl.record(c, deny(c))
    waits = []
    for _ in range(5):
        v = await rl.check(c, "grt_1", pol)
        assert v.code == "retry_backoff"
        waits.append(v.retry_after)
        clock.advance(0.1)
    assert all(b > a for a, b in zip(waits, waits[1:]))
    assert waits[-1] > 15
    # a near-same retry (case, spacing) is the same retry
    near = call("bank.send_money", {"recipient": " xx00", "amount": 10.0})
    assert (await rl.check(near, "grt_1", pol)).code == "retry_backoff"
    # a different call is not held back
    assert (await rl.check(call("bank.send_money", {"recipient": "YY11"}), "grt_1", pol)).retry_after is None
    # once the backoff has passed the call may go through again
    clock.advance(120)
    assert (await rl.check(c, "grt_1", pol)).retry_after is None


async def test_window_limit_answers_rate_limited_with_retry_after():
    rl = memory_rate_limiter(FakeClock())
    pol = policy(rate_limits=[RateLimitSpec("per-grant", "grant", "3/minute")])
    c = call("fs.read", {"path": "/a"})
    for _ in range(3):
        assert (await rl.check(c, "grt_1", pol)).retry_after is None
    v = await rl.check(c, "grt_1", pol)
    assert (v.code, v.limit_id) == ("rate_limited", "per-grant")
    assert 0 < v.retry_after <= 60
    assert (await rl.check(c, "grt_2", pol)).retry_after is None  # another grant: own window


async def test_broken_storage_fails_closed():
    class Broken:
        async def times(self, *a):
            raise ConnectionError("down")

    rl = memory_rate_limiter(FakeClock())
    rl._denials = Broken()  # type: ignore[assignment]
    v = await rl.check(call("x"), "grt_1", policy())
    assert v.code == "rate_limited" and v.retry_after


async def redis_url() -> str:
    """The test Redis (skipped, or failed in CI, when it does not answer)."""
    url = os.environ.get("JITGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    import redis.asyncio as aioredis

    probe = aioredis.Redis.from_url(url)
    try:
        await probe.ping()
    except Exception:
        service_missing("redis")
    finally:
        await probe.aclose()
    return url


async def test_redis_limits_shared_between_replicas():
    url = await redis_url()
    import redis.asyncio as aioredis

    prefix = f"jitgate-test-{uuid.uuid4().hex[:8]}"
    clock = FakeClock()
    a = redis_rate_limiter(url, clock, prefix=prefix)
    b = redis_rate_limiter(url, clock, prefix=prefix)
    pol = policy(rate_limits=[RateLimitSpec("per-agent", "agent", "2/minute")])
    c = call("fs.read", {"path": "/a"})
    assert (await a.check(c, "g", pol)).retry_after is None
    assert (await b.check(c, "g", pol)).retry_after is None
    assert (await a.check(c, "g", pol)).code == "rate_limited"
    other = call("fs.write", {"path": "/b"})
    await a.record(other, deny(other))
    v = await b.check(other, "g", policy())
    assert v.code == "retry_backoff" and v.retry_after > 0
    await b.record_allow(other)
    clock.advance(1)
    assert (await a.check(other, "g", policy())).retry_after is None
    r = aioredis.Redis.from_url(url)
    keys = [k async for k in r.scan_iter(f"{prefix}*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def test_redis_counts_two_denials_at_the_same_instant_as_two():
    import redis.asyncio as aioredis

    from adapters.ratelimit.limiter import RedisDenials

    client = aioredis.Redis.from_url(await redis_url())
    prefix = f"jitgate-test-{uuid.uuid4().hex[:8]}:"
    denials = RedisDenials(client, prefix=prefix)
    try:
        assert await denials.add("k", 100.0, 60) == 1
        assert await denials.add("k", 100.0, 60) == 2  # the same clock reading, twice
        assert await denials.times("k", 100.0, 60) == [100.0, 100.0]
    finally:
        await denials.clear("k")
        await client.aclose()
