"""ApprovalStore contract: exact-call lookup and single consumption under concurrency."""

from __future__ import annotations

import asyncio

from storage_backends import harness, make_approval  # noqa: F401  (fixture)

from gateway.model import ApprovalStatus


async def test_create_get_round_trip(harness):
    store = harness.stores.approvals
    a = make_approval(status=ApprovalStatus.PENDING)
    await store.create(a)
    assert await store.get(a.approval_id) == a
    assert await store.get("ap_missing") is None


async def test_find_newest_non_consumed_for_the_exact_call(harness):
    store = harness.stores.approvals
    old = make_approval(created_at=100.0)
    new = make_approval(created_at=200.0, status=ApprovalStatus.PENDING)
    consumed = make_approval(created_at=300.0, status=ApprovalStatus.CONSUMED)
    other_args = make_approval(created_at=400.0, args_digest="e" * 64)
    no_grant = make_approval(created_at=500.0, grant_id=None)
    for a in (old, new, consumed, other_args, no_grant):
        await store.create(a)
    found = await store.find("agent_a", "gr_1", "billing.refund", "d" * 64)
    assert found is not None and found.approval_id == new.approval_id
    found = await store.find("agent_a", None, "billing.refund", "d" * 64)
    assert found is not None and found.approval_id == no_grant.approval_id
    assert await store.find("agent_b", "gr_1", "billing.refund", "d" * 64) is None
    assert await store.find("agent_a", "gr_1", "billing.other", "d" * 64) is None


async def test_set_status_compare_and_set(harness):
    store = harness.stores.approvals
    a = make_approval(status=ApprovalStatus.PENDING)
    await store.create(a)
    assert await store.set_status(a.approval_id, "approved", approver="rev_1",
                                  expected="pending")
    assert not await store.set_status(a.approval_id, "denied", approver="rev_2",
                                      expected="pending")
    got = await store.get(a.approval_id)
    assert got.status is ApprovalStatus.APPROVED and got.approver == "rev_1"
    assert not await store.set_status("ap_missing", "approved")
    assert await store.set_status(a.approval_id, ApprovalStatus.CONSUMED)
    got = await store.get(a.approval_id)
    assert got.status is ApprovalStatus.CONSUMED and got.approver == "rev_1"
    assert await store.find("agent_a", "gr_1", "billing.refund", "d" * 64) is None


async def test_single_use_approval_is_consumed_exactly_once(harness):
    store = harness.stores.approvals
    a = make_approval(status=ApprovalStatus.APPROVED)
    await store.create(a)
    wins = await asyncio.gather(*[store.set_status(a.approval_id, "consumed",
                                                   expected="approved") for _ in range(50)])
    assert sum(wins) == 1
    assert (await store.get(a.approval_id)).status is ApprovalStatus.CONSUMED


async def test_list_filters_newest_first(harness):
    store = harness.stores.approvals
    p1 = make_approval(status=ApprovalStatus.PENDING, created_at=100.0)
    p2 = make_approval(status=ApprovalStatus.PENDING, created_at=300.0)
    d1 = make_approval(status=ApprovalStatus.DENIED, created_at=200.0)
    for a in (p1, p2, d1):
        await store.create(a)
    assert [a.approval_id for a in await store.list()] == [p2.approval_id, d1.approval_id,
                                                           p1.approval_id]
    assert [a.approval_id for a in await store.list(status="pending")] == [p2.approval_id,
                                                                           p1.approval_id]
    assert [a.approval_id for a in await store.list(status=ApprovalStatus.DENIED)] == [
        d1.approval_id]
    assert len(await store.list(limit=1)) == 1
