"""KeyStore, LeaseStore and ToolPinStore contracts."""

from __future__ import annotations

import asyncio

import pytest
from storage_backends import harness, make_lease  # noqa: F401  (fixture)

from gateway.model import Principal, Role
from gateway.ports import ConcurrentUpdate, KeyRecord


def _key(key_id: str, created_at: float) -> KeyRecord:
    return KeyRecord(key_id=key_id, key_hash="ab" * 32, created_at=created_at,
                     principal=Principal(id="agent_a", role=Role.AGENT, name="Agent A",
                                         attributes={"team": "billing", "tier": 2}))


async def test_keys_store_hashes_and_disable(harness):
    store = harness.stores.keys
    k1, k2 = _key("key_1", 200.0), _key("key_2", 100.0)
    await store.add(k1)
    await store.add(k2)
    with pytest.raises(ConcurrentUpdate):
        await store.add(k1)
    assert await store.get("key_1") == k1
    assert await store.get("key_missing") is None
    assert [k.key_id for k in await store.list()] == ["key_2", "key_1"]
    await store.disable("key_1")
    await store.disable("key_missing")  # no-op
    assert (await store.get("key_1")).disabled is True
    assert (await store.get("key_2")).disabled is False


async def test_leases_live_and_revoke(harness):
    store = harness.stores.leases
    live = make_lease(issued_at=100.0, ttl=30)
    expired = make_lease(issued_at=50.0, ttl=10)
    other = make_lease(grant_id="gr_2", issued_at=100.0)
    for x in (live, expired, other):
        await store.add(x)
    assert await store.get(live.lease_id) == live
    assert await store.get("ls_missing") is None
    assert [x.lease_id for x in await store.list_for_grant("gr_1")] == [expired.lease_id,
                                                                        live.lease_id]
    assert [x.lease_id for x in await store.list_for_grant("gr_1", live_only=True,
                                                           now=110.0)] == [live.lease_id]
    wins = await asyncio.gather(*[store.revoke(live.lease_id, "grant_revoked")
                                  for _ in range(10)])
    assert sum(wins) == 1
    got = await store.get(live.lease_id)
    assert got.revoked and got.revoked_reason == "grant_revoked"
    assert await store.list_for_grant("gr_1", live_only=True, now=110.0) == []
    assert not await store.revoke("ls_missing", "x")


async def test_tool_pins(harness):
    store = harness.stores.pins
    assert await store.get("fs.read") is None
    await store.pin("fs.read", "f1")
    await store.pin("fs.write", "w1")
    await store.pin("fs.read", "f2")
    assert await store.get("fs.read") == "f2"
    assert await store.get("fs.write") == "w1"
