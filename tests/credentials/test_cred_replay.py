import os
import uuid

import pytest
from cred_support import ISS, make_request, service_missing

from adapters.credentials import (CallTokenIssuer, CallTokenVerifier, Keyring, MemoryReplayStore,
                                  RedisReplayStore, TokenError)
from gateway.clock import FakeClock
from gateway.ports import StoreUnavailable

REDIS_URL = os.environ.get("JITGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_memory_store_single_use_and_purge():
    clock = FakeClock()
    store = MemoryReplayStore(clock, retain_s=5, purge_every=3)
    exp = clock.now() + 10
    assert await store.first_use("a", exp) is True
    assert await store.first_use("a", exp) is False
    clock.advance(16)  # past exp + retain: forgotten (the expiry check refuses it anyway)
    assert await store.first_use("b", clock.now() + 10) is True
    assert len(store) == 1
    assert await store.first_use("a", exp) is True


@pytest.fixture
async def redis_client():
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        service_missing("redis at " + REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.mark.redis
async def test_redis_store_is_single_use_across_replicas(redis_client):
    client, prefix = redis_client
    clock = FakeClock()
    one = RedisReplayStore(client, prefix, clock=clock, retain_s=5)
    two = RedisReplayStore(client, prefix, clock=clock, retain_s=5)
    exp = clock.now() + 30
    assert await one.first_use("jti-1", exp) is True
    assert await two.first_use("jti-1", exp) is False
    assert await two.first_use("jti-2", exp) is True
    assert await two.seen("jti-1") and not await two.seen("jti-3")
    ttl = await client.pttl(prefix + "jti-1")
    assert 30_000 < ttl <= 35_000


@pytest.mark.redis
async def test_verifiers_sharing_redis_refuse_a_replay(redis_client):
    client, prefix = redis_client
    clock = FakeClock()
    ring = Keyring.ephemeral(clock)
    token = (await CallTokenIssuer(ring, ISS, clock).mint(make_request(now=clock.now()))).value
    args = make_request(now=clock.now()).call.arguments
    replicas = [CallTokenVerifier(ring.jwks(), audience="billing", clock=clock,
                                  replay=RedisReplayStore(client, prefix, clock=clock))
                for _ in range(2)]
    await replicas[0].verify(token, tool="billing.refund", arguments=args)
    with pytest.raises(TokenError) as info:
        await replicas[1].verify(token, tool="billing.refund", arguments=args)
    assert info.value.code == "replayed"


async def test_unreachable_redis_fails_closed():
    clock = FakeClock()
    store = RedisReplayStore("redis://127.0.0.1:1/0", "x:", clock=clock)
    try:
        with pytest.raises(StoreUnavailable):
            await store.first_use("j", clock.now() + 10)
        ring = Keyring.ephemeral(clock)
        req = make_request(now=clock.now())
        token = (await CallTokenIssuer(ring, ISS, clock).mint(req)).value
        verifier = CallTokenVerifier(ring.jwks(), audience="billing", clock=clock, replay=store)
        with pytest.raises(TokenError) as info:
            await verifier.verify(token, tool="billing.refund", arguments=req.call.arguments)
        assert info.value.code == "replay_unavailable"
    finally:
        await store.aclose()
