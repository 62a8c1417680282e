"""GrantStore contract: every backend behaves the same."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from storage_backends import harness, make_grant  # noqa: F401  (fixture)

from gateway.model import GrantStatus
from gateway.ports import ConcurrentUpdate


async def test_create_get_round_trip(harness):
    store = harness.stores.grants
    g = make_grant(call_budget=5, approvers=("rev_1",), parent_grant_id="gr_parent",
                   justification="incident 7", break_glass=True)
    await store.create(g)
    assert await store.get(g.grant_id) == g
    assert await store.get("gr_missing") is None


async def test_create_twice_conflicts(harness):
    g = make_grant()
    await harness.stores.grants.create(g)
    with pytest.raises(ConcurrentUpdate):
        await harness.stores.grants.create(g)


async def test_update_compare_and_set(harness):
    store = harness.stores.grants
    g = make_grant(status=GrantStatus.PENDING)
    await store.create(g)
    approved = g.evolve(status=GrantStatus.ACTIVE, approvers=("rev_1",))
    await store.update(approved, expected_version=g.version)
    assert await store.get(g.grant_id) == approved
    stale = g.evolve(status=GrantStatus.DENIED)
    with pytest.raises(ConcurrentUpdate):
        await store.update(stale, expected_version=g.version)
    assert (await store.get(g.grant_id)).status is GrantStatus.ACTIVE
    with pytest.raises(ConcurrentUpdate):
        await store.update(make_grant(), expected_version=1)


async def test_concurrent_updates_only_one_wins(harness):
    store = harness.stores.grants
    g = make_grant(status=GrantStatus.PENDING)
    await store.create(g)

    async def approve(who: str) -> bool:
        try:
            await store.update(g.evolve(status=GrantStatus.ACTIVE, approvers=(who,)), g.version)
            return True
        except ConcurrentUpdate:
            return False

    wins = await asyncio.gather(*[approve(f"rev_{i}") for i in range(20)])
    assert sum(wins) == 1
    assert len((await store.get(g.grant_id)).approvers) == 1


async def test_list_filters_and_order(harness):
    store = harness.stores.grants
    a1 = make_grant(agent_id="agent_a", created_at=100.0)
    a2 = make_grant(agent_id="agent_a", created_at=200.0, status=GrantStatus.REVOKED)
    b1 = make_grant(agent_id="agent_b", created_at=150.0)
    for g in (a1, a2, b1):
        await store.create(g)
    assert [g.grant_id for g in await store.list()] == [a2.grant_id, b1.grant_id, a1.grant_id]
    assert [g.grant_id for g in await store.list(agent_id="agent_a")] == [a2.grant_id,
                                                                          a1.grant_id]
    assert [g.grant_id for g in await store.list(status="active")] == [b1.grant_id, a1.grant_id]
    assert [g.grant_id for g in await store.list(agent_id="agent_a",
                                                 status=GrantStatus.REVOKED)] == [a2.grant_id]
    assert len(await store.list(limit=2)) == 2


async def test_consume_call_is_atomic_under_concurrency(harness):
    store = harness.stores.grants
    g = make_grant(call_budget=100)
    await store.create(g)
    counts = await asyncio.gather(*[store.consume_call(g.grant_id) for _ in range(50)])
    assert sorted(counts) == list(range(1, 51))
    now = await store.get(g.grant_id)
    assert now.calls_used == 50
    assert now.version == g.version + 50
    # an update based on the pre-consumption read loses: no lost increment
    with pytest.raises(ConcurrentUpdate):
        await store.update(g.evolve(status=GrantStatus.REVOKED), expected_version=g.version)
    await store.update(now.evolve(status=GrantStatus.REVOKED), expected_version=now.version)
    assert (await store.get(g.grant_id)).calls_used == 50


async def test_consume_call_unknown_grant(harness):
    with pytest.raises(KeyError):
        await harness.stores.grants.consume_call("gr_missing")


async def test_get_sees_updates_after_read(harness):
    # the SQLite write-through cache must never serve a stale grant
    store = harness.stores.grants
    g = make_grant()
    await store.create(g)
    assert (await store.get(g.grant_id)) == g
    nxt = g.evolve(status=GrantStatus.REVOKED, revoked_reason="drift")
    await store.update(nxt, expected_version=g.version)
    got, _ = await asyncio.gather(store.get(g.grant_id), store.consume_call(g.grant_id))
    assert got.status is GrantStatus.REVOKED
    final = await store.get(g.grant_id)
    assert final == replace(nxt, calls_used=1, version=nxt.version + 1)
