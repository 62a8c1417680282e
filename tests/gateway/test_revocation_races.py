"""Revocation under concurrency, and one agent's calls against another agent's grant.

Each race is forced deterministically: a store or issuer hook lets the other party act at the
exact moment that used to lose the revocation (no sleeping, no timing luck).
"""

from __future__ import annotations

import asyncio

import pytest

from adapters.compose import memory_gateway
from adapters.credentials.call_token import CallTokenIssuer
from gateway.clock import FakeClock
from gateway.drift import build_monitor
from gateway.errors import GatewayError
from gateway.grants import GrantRequest
from gateway.model import CallOutcome, Effect, GrantStatus, Principal, Role, ToolCall
from gateway.ports import AuditEvent, StoreUnavailable
from policies.loader import load_policy_texts
from tests.drift.test_gateway_drift import INBOX, POLICY, SCOPE

AGENT = Principal("agent:payer", Role.AGENT, "payer")
OTHER = Principal("agent:other", Role.AGENT, "other")
REVIEWER = Principal("reviewer:rita", Role.REVIEWER, "rita")
READ_DOCS = [{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}]
OBJECTIVE = "Refund my friend GB29NWBK60161331926819 the 2.00 they overpaid for dinner"
HIJACK = {"recipient": "US133000000121212121212", "amount": 100.0}


def call(tool: str, grant_id: str | None, agent: Principal = AGENT, **args) -> ToolCall:
    return ToolCall(agent=agent, tool=tool, arguments=args, grant_id=grant_id)


def drift_gateway(clock: FakeClock):
    return memory_gateway(load_policy_texts([("drift-test", POLICY)]), clock,
                          drift=build_monitor(clock), ratelimiter=None)


async def read_inbox(gw, grant_id: str) -> None:
    r = await gw.authorize(call("bank.read_transactions", grant_id, n=10))
    assert r.decision.allowed
    await gw.complete(AGENT, r.decision.decision_id,
                      CallOutcome(r.decision.decision_id, True, INBOX))


async def test_a_drift_revocation_survives_a_call_counted_against_the_budget_meanwhile():
    clock = FakeClock()
    gw = drift_gateway(clock)
    g = await gw.request_grant(AGENT, GrantRequest(OBJECTIVE, SCOPE, 600, call_budget=100))
    await read_inbox(gw, g.grant_id)
    # Another call of the grant is counted while the revocation is being written: the
    # revocation's compare-and-set then finds a newer version of the grant.
    append = gw.audit.append

    async def counting_append(event: AuditEvent):
        record = await append(event)
        if event.type == "grant.revoked":
            await gw.grant_store.consume_call(event.grant_id)
        return record
    gw.audit.append = counting_append
    gw.grants._audit = gw.audit

    hijacked = await gw.authorize(call("bank.send_money", g.grant_id, **HIJACK))
    assert hijacked.decision.code == "grant_revoked_drift"
    stored = await gw.grant_store.get(g.grant_id)
    assert stored.status is GrantStatus.REVOKED and stored.revoked_reason == "drift"
    later = await gw.authorize(call("bank.read_transactions", g.grant_id, n=1))
    assert later.decision.code == "grant_revoked_drift" and later.credential is None


async def test_a_drift_revocation_that_fails_keeps_the_grant_denied_and_is_retried():
    clock = FakeClock()
    gw = drift_gateway(clock)
    g = await gw.request_grant(AGENT, GrantRequest(OBJECTIVE, SCOPE, 600))
    await read_inbox(gw, g.grant_id)
    revoke = gw.grants.revoke
    failures = [1]

    async def flaky_revoke(*args, **kw):
        if failures:
            failures.pop()
            raise StoreUnavailable("the grant store is down")
        return await revoke(*args, **kw)
    gw.grants.revoke = flaky_revoke

    hijacked = await gw.authorize(call("bank.send_money", g.grant_id, **HIJACK))
    assert hijacked.decision.code == "grant_revoked_drift"  # a deny, not an exception
    assert (await gw.grant_store.get(g.grant_id)).status is GrantStatus.ACTIVE  # not stored yet
    # A harmless call now: still denied, and the revocation is tried again and stored.
    later = await gw.authorize(call("bank.read_transactions", g.grant_id, n=1))
    assert later.decision.effect is Effect.DENY and later.decision.code == "grant_revoked_drift"
    assert (await gw.grant_store.get(g.grant_id)).status is GrantStatus.REVOKED


class HeldIssuer(CallTokenIssuer):
    """Mints only once the test lets it: the revocation runs in between."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.minting = asyncio.Event()
        self.go = asyncio.Event()
        self.released: list[str] = []

    async def mint(self, request):
        self.minting.set()
        await self.go.wait()
        return await super().mint(request)

    async def release(self, lease, reason):
        self.released.append(lease.lease_id)


async def test_a_credential_minted_while_its_grant_is_revoked_is_ended_and_the_call_denied():
    clock = FakeClock()
    gw = memory_gateway(clock=clock, drift=None, ratelimiter=None)
    issuer = HeldIssuer(gw.keyring, "jitgate", clock)
    gw.issuers["jwt"] = issuer
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    pending = asyncio.ensure_future(
        gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md")))
    await issuer.minting.wait()  # decided allow on the active grant; now minting
    await gw.revoke_grant(REVIEWER, g.grant_id, "stop")
    issuer.go.set()
    auth = await pending
    assert auth.decision.effect is Effect.DENY and auth.decision.code == "grant_revoked"
    assert auth.credential is None
    assert await gw.leases.list_for_grant(g.grant_id, live_only=True, now=clock.now()) == []
    assert len(issuer.released) == 1
    trail = [r.type for r in await gw.audit.read(decision_id=auth.decision.decision_id)]
    assert trail == ["call.decided", "call.refused"]


async def test_another_agents_calls_on_a_grant_leave_its_drift_score_alone():
    clock = FakeClock()
    gw = drift_gateway(clock)
    g = await gw.request_grant(AGENT, GrantRequest(OBJECTIVE, SCOPE, 600))
    for i in range(5):
        r = await gw.authorize(call("bank.update_password", g.grant_id, OTHER, password=f"p{i}"))
        assert r.decision.code == "grant_not_owned"
    assert gw.drift.score(g.grant_id) == 0.0
    assert gw.drift.signals(g.grant_id) == []
    # the owner's own single slip stays below the threshold
    slip = await gw.authorize(call("bank.update_password", g.grant_id, password="x"))
    assert slip.decision.code != "grant_revoked_drift"
    assert (await gw.grant_store.get(g.grant_id)).status is GrantStatus.ACTIVE


async def test_an_agent_lists_only_its_own_decisions_on_its_grant():
    clock = FakeClock()
    gw = memory_gateway(clock=clock, drift=None, ratelimiter=None)
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    mine = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    theirs = await gw.authorize(call("fs.read_file", g.grant_id, OTHER, path="/workspace/docs/s"))
    assert theirs.decision.code == "grant_not_owned"
    listed = await gw.decisions_for_grant(AGENT, g.grant_id)
    assert [d["decision_id"] for d in listed] == [mine.decision.decision_id]
    admin = Principal("admin:ada", Role.ADMIN, "ada")
    assert len(await gw.decisions_for_grant(admin, g.grant_id)) == 2


async def test_an_approval_that_loses_a_race_says_so_in_the_trail():
    clock = FakeClock()
    gw = memory_gateway(clock=clock, drift=None, ratelimiter=None)
    g = await gw.request_grant(AGENT, GrantRequest(
        "fix the typo in the docs",
        [{"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace/docs"}}}], 600))
    assert g.status is GrantStatus.PENDING
    update = gw.grant_store.update

    async def racing_update(grant, expected_version):  # another reviewer denies first
        await update(grant.evolve(status=GrantStatus.DENIED), expected_version)
        return await update(grant, expected_version)
    gw.grant_store.update = racing_update
    with pytest.raises(GatewayError) as exc:
        await gw.approve_grant(REVIEWER, g.grant_id)
    assert exc.value.code == "conflict"
    trail = [(r.type, r.data.get("lost")) for r in await gw.audit.read(grant_id=g.grant_id)]
    approved = next(i for i, (t, _) in enumerate(trail) if t == "grant.approved")
    assert trail[approved + 1] == ("grant.change_lost", "grant.approved")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "\udc00", 2**60])
async def test_arguments_that_are_no_json_values_are_denied_and_recorded(value):
    clock = FakeClock()
    gw = memory_gateway(clock=clock, drift=build_monitor(clock), ratelimiter=None)
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md",
                                   offset=value))
    assert auth.decision.effect is Effect.DENY and auth.decision.code == "invalid_arguments"
    [record] = await gw.audit.read(decision_id=auth.decision.decision_id)
    assert record.type == "call.decided"
    assert record.data["arguments"] == {"_unrecordable": "the arguments are not valid JSON values"}


async def test_an_expired_grant_whose_expiry_cannot_be_recorded_is_still_a_plain_deny():
    clock = FakeClock()
    gw = memory_gateway(clock=clock, drift=None, ratelimiter=None)
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    clock.advance(601)

    async def down(*args, **kw):
        raise StoreUnavailable("the lease store is down")
    gw.leases.list_for_grant = down
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert auth.decision.effect is Effect.DENY and auth.decision.code == "grant_expired"


async def test_a_call_token_never_outlives_its_grant():
    clock = FakeClock()
    gw = memory_gateway(clock=clock, drift=None, ratelimiter=None)
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    clock.advance(595)  # 5 s of the grant left; the tier's credential TTL is longer
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert auth.decision.allowed
    assert auth.credential.lease.expires_at == g.expires_at


async def test_a_lease_store_outage_still_releases_the_credential():
    clock = FakeClock()
    gw = memory_gateway(clock=clock, drift=None, ratelimiter=None)
    issuer = HeldIssuer(gw.keyring, "jitgate", clock)
    issuer.go.set()
    gw.issuers["jwt"] = issuer
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert auth.decision.allowed

    async def down(*args, **kw):
        raise StoreUnavailable("the lease store is down")
    gw.leases.revoke = down
    await gw.revoke_grant(REVIEWER, g.grant_id, "stop")
    assert issuer.released == [auth.credential.lease.lease_id]
