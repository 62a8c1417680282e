"""The core path through the in-process Gateway: grants, decisions, approvals, fail-closed."""

from __future__ import annotations

import pytest

from adapters.compose import memory_gateway
from gateway.clock import FakeClock
from gateway.errors import GatewayError
from gateway.grants import GrantRequest, RenewRequest
from gateway.model import CallOutcome, Effect, GrantStatus, Principal, Role, ToolCall

AGENT = Principal("agent:coder", Role.AGENT, "coder")
OTHER = Principal("agent:other", Role.AGENT, "other")
REVIEWER = Principal("reviewer:rita", Role.REVIEWER, "rita")
REVIEWER2 = Principal("reviewer:sam", Role.REVIEWER, "sam")
SHELL = [{"tool": "shell.run", "args": {"command": {"max_len": 200}}}]
READ_DOCS = [{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gw(clock: FakeClock):
    return memory_gateway(clock=clock, drift=None, ratelimiter=None)


def call(tool: str, grant_id: str | None = None, agent: Principal = AGENT, **args) -> ToolCall:
    return ToolCall(agent=agent, tool=tool, arguments=args, grant_id=grant_id)


async def test_low_risk_grant_is_active_at_once_and_allows_in_scope_calls(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    assert g.status is GrantStatus.ACTIVE and g.tier == "low"
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert auth.decision.effect is Effect.ALLOW and auth.decision.code == "allowed"
    assert auth.credential is not None and auth.credential.value  # a call token
    assert auth.decision.policy_revision == gw.policy.revision
    assert auth.decision.rule_ids


async def test_a_call_the_gateway_forwards_itself_gets_a_lease_and_no_token(gw, clock):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"),
                              token=False)
    assert auth.decision.allowed and auth.credential is not None
    lease = auth.credential.lease
    assert auth.credential.value is None and lease.kind == "gateway"
    assert (lease.decision_id, lease.grant_id, lease.tool) == (
        auth.decision.decision_id, g.grant_id, "fs.read_file")
    assert lease.expires_at - clock.now() == gw.policy.tier_of("fs.read_file").credential_ttl_s
    assert [l.lease_id for l in await gw.leases_for_grant(AGENT, g.grant_id)] == [lease.lease_id]
    await gw.complete(AGENT, auth.decision.decision_id,
                      CallOutcome(auth.decision.decision_id, ok=True, output="text"))
    assert (await gw.leases.get(lease.lease_id)).revoked  # used once


async def test_out_of_scope_calls_are_denied_with_distinct_codes(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    outside = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/src/x.py"))
    assert (outside.decision.effect, outside.decision.code) == (Effect.DENY, "argument_out_of_scope")
    assert outside.decision.rule_ids == ("grant_scope",)  # every decision names what decided it
    traversal = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/../../etc/passwd"))
    assert traversal.decision.code == "argument_out_of_scope"
    other_tool = await gw.authorize(call("fs.write_file", g.grant_id, path="/workspace/docs/a", content="x"))
    assert other_tool.decision.code == "tool_not_in_scope"
    assert outside.credential is None and other_tool.credential is None


async def test_privileged_grant_waits_for_a_reviewer(gw):
    g = await gw.request_grant(AGENT, GrantRequest(
        "fix the typo in the docs", [{"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace/docs"}}}], 600))
    assert g.status is GrantStatus.PENDING and g.tier == "privileged"
    pending = await gw.authorize(call("fs.write_file", g.grant_id, path="/workspace/docs/a.md", content="x"))
    assert pending.decision.code == "grant_pending"
    with pytest.raises(GatewayError) as exc:
        await gw.approve_grant(AGENT, g.grant_id)
    assert exc.value.code == "forbidden"
    approved = await gw.approve_grant(REVIEWER, g.grant_id)
    assert approved.status is GrantStatus.ACTIVE
    ok = await gw.authorize(call("fs.write_file", g.grant_id, path="/workspace/docs/a.md", content="x"))
    assert ok.decision.effect is Effect.ALLOW


async def test_nobody_approves_their_own_grant(gw):
    admin = Principal("admin:ada", Role.ADMIN, "ada", {"policy_role": "agent"})
    g = await gw.request_grant(admin, GrantRequest("write docs", [{"tool": "fs.write_file"}], 600))
    assert g.status is GrantStatus.PENDING
    with pytest.raises(GatewayError) as exc:
        await gw.approve_grant(admin, g.grant_id)
    assert exc.value.code == "self_approval"


async def test_scope_beyond_ceiling_is_refused_naming_what_was_too_broad(gw):
    with pytest.raises(GatewayError) as exc:
        await gw.request_grant(AGENT, GrantRequest("run things", [{"tool": "shell.run"}], 60))
    assert exc.value.code in ("scope_exceeds_ceiling", "tier_exceeds_ceiling")
    assert "shell.run" in exc.value.message or exc.value.code == "tier_exceeds_ceiling"
    with pytest.raises(GatewayError) as exc:
        await gw.request_grant(AGENT, GrantRequest("anything", [{"tool": "*"}], 60))
    assert exc.value.code == "scope_exceeds_ceiling"
    assert exc.value.details["too_broad"]


async def test_ttl_above_the_tier_ceiling_is_refused(gw):
    with pytest.raises(GatewayError) as exc:
        await gw.request_grant(AGENT, GrantRequest("read", READ_DOCS, 10 * 24 * 3600))
    assert exc.value.code == "ttl_exceeds_tier"


async def test_expiry_is_enforced_from_the_clock(gw, clock):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 60))
    clock.advance(61)
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert auth.decision.code == "grant_expired"
    assert (await gw.get_grant(AGENT, g.grant_id)).status is GrantStatus.EXPIRED
    types = [r.type for r in await gw.audit.read()]
    assert "grant.expired" in types


async def test_revocation_denies_later_calls_and_ends_live_leases(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    first = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    lease_id = first.credential.lease.lease_id
    await gw.revoke_grant(REVIEWER, g.grant_id, "task finished")
    after = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert after.decision.code == "grant_revoked"
    lease = await gw.leases.get(lease_id)
    assert lease.revoked
    revoked = [r for r in await gw.audit.read() if r.type == "grant.revoked"]
    assert revoked and lease_id in revoked[0].data["leases"]


async def test_an_agent_sees_and_acts_on_its_own_grants_only(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    with pytest.raises(GatewayError) as exc:
        await gw.get_grant(OTHER, g.grant_id)
    assert exc.value.code == "grant_not_found"
    stolen = await gw.authorize(call("fs.read_file", g.grant_id, agent=OTHER, path="/workspace/docs/a.md"))
    assert stolen.decision.code == "grant_not_owned"
    with pytest.raises(GatewayError):
        await gw.revoke_grant(OTHER, g.grant_id)
    assert [x.grant_id for x in await gw.list_grants(OTHER)] == []


async def test_break_glass_needs_two_different_approvers_and_a_justification(gw):
    maint = Principal("agent:ops", Role.AGENT, "ops", {"policy_role": "maintainer"})
    with pytest.raises(GatewayError) as exc:
        await gw.request_grant(maint, GrantRequest("restart the service", SHELL, 120))
    assert exc.value.code == "justification_required"
    g = await gw.request_grant(maint, GrantRequest("restart the service", SHELL, 120,
                                                   justification="INC-42: the service is down"))
    assert g.status is GrantStatus.PENDING and g.break_glass and g.approvals_required == 2
    one = await gw.approve_grant(REVIEWER, g.grant_id)
    assert one.status is GrantStatus.PENDING
    with pytest.raises(GatewayError) as exc:
        await gw.approve_grant(REVIEWER, g.grant_id)
    assert exc.value.code == "already_approved"
    two = await gw.approve_grant(REVIEWER2, g.grant_id)
    assert two.status is GrantStatus.ACTIVE and two.review_required
    auth = await gw.authorize(call("shell.run", g.grant_id, agent=maint, command="systemctl restart app"))
    assert auth.decision.effect is Effect.ALLOW
    assert any("review" in r for r in auth.decision.reasons)


async def test_review_rule_creates_a_single_use_approval_bound_to_the_exact_call(gw):
    payer = Principal("agent:payer", Role.AGENT, "payer",
                      {"policy_role": "payments_agent", "team": "payments"})
    scope = [{"tool": "payments.transfer",
              "args": {"amount": {"all": [{"gt": 0}, {"le": 10000}]}, "currency": {"in": ["EUR"]}}}]
    g = await gw.request_grant(payer, GrantRequest("pay the supplier invoices", scope, 600))
    if g.status is GrantStatus.PENDING:
        g = await gw.approve_grant(REVIEWER, g.grant_id)
    big = dict(amount=5_000, currency="EUR", recipient_iban="DE89370400440532013000", memo="invoice 7")
    first = await gw.authorize(call("payments.transfer", g.grant_id, agent=payer, **big))
    assert first.decision.effect is Effect.REVIEW, first.decision
    approval_id = first.decision.approval_id
    assert approval_id
    again = await gw.authorize(call("payments.transfer", g.grant_id, agent=payer, **big))
    assert again.decision.code == "approval_pending"
    with pytest.raises(GatewayError) as exc:
        await gw.approve_call(payer, approval_id)
    assert exc.value.code == "forbidden"
    await gw.approve_call(REVIEWER, approval_id)
    different = await gw.authorize(call("payments.transfer", g.grant_id, agent=payer, **{**big, "amount": 5_001}))
    assert different.decision.effect is Effect.REVIEW and different.decision.approval_id != approval_id
    allowed = await gw.authorize(call("payments.transfer", g.grant_id, agent=payer, **big))
    assert (allowed.decision.effect, allowed.decision.code) == (Effect.ALLOW, "allowed_by_approval")
    once_more = await gw.authorize(call("payments.transfer", g.grant_id, agent=payer, **big))
    assert once_more.decision.effect is Effect.REVIEW and once_more.decision.approval_id != approval_id


async def test_no_grant_is_judged_against_the_baseline(gw):
    listed = await gw.authorize(call("fs.list_directory", path="/workspace"))
    assert listed.decision.effect is Effect.ALLOW
    read = await gw.authorize(call("fs.read_file", path="/workspace/a"))
    assert read.decision.code == "no_grant" and read.decision.rule_ids == ("baseline:agent",)


async def test_unknown_grant_is_denied(gw):
    auth = await gw.authorize(call("fs.read_file", "grt_nope", path="/workspace/docs/a"))
    assert auth.decision.code == "grant_not_found"


async def test_call_budget_exhausts_the_grant(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read two docs", READ_DOCS, 600, call_budget=2))
    codes = [(await gw.authorize(call("fs.read_file", g.grant_id, path=f"/workspace/docs/{i}"))).decision.code
             for i in range(3)]
    assert codes == ["allowed", "allowed", "grant_exhausted"]


async def test_renewal_narrowing_is_automatic_widening_needs_approval(gw, clock):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    narrowed = await gw.renew_grant(AGENT, g.grant_id, RenewRequest(
        ttl_s=300, scope=[{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs/api"}}}]))
    assert narrowed.grant_id == g.grant_id and narrowed.status is GrantStatus.ACTIVE
    wider = await gw.renew_grant(AGENT, g.grant_id, RenewRequest(
        scope=[*READ_DOCS, {"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace/docs"}}}]))
    assert wider.grant_id != g.grant_id and wider.status is GrantStatus.PENDING
    assert wider.parent_grant_id == g.grant_id
    await gw.revoke_grant(AGENT, g.grant_id)
    with pytest.raises(GatewayError) as exc:
        await gw.renew_grant(AGENT, g.grant_id, RenewRequest(ttl_s=60))
    assert exc.value.code == "grant_not_renewable"


async def test_audit_failure_denies_the_call(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    gw.audit.fail_next(1)
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert (auth.decision.effect, auth.decision.code) == (Effect.DENY, "audit_unavailable")
    assert auth.credential is None
    live = await gw.leases.list_for_grant(g.grant_id, live_only=True, now=gw.clock.now())
    assert live == []


async def test_store_failure_denies_the_call(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    gw.grant_store.fail_next(1)
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert (auth.decision.effect, auth.decision.code) == (Effect.DENY, "store_unavailable")


async def test_issuer_failure_denies_the_call(clock):
    class Broken:
        kind = "jwt"

        async def mint(self, request):
            raise RuntimeError("hsm offline")

        async def release(self, lease, reason):
            return None

    gw = memory_gateway(clock=clock, drift=None, ratelimiter=None, issuers={"jwt": Broken()})
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    assert auth.decision.code == "credential_unavailable"


async def test_every_decision_and_outcome_is_audited_with_a_redacted_view(gw):
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    auth = await gw.authorize(call("fs.read_file", g.grant_id, path="/workspace/docs/a.md"))
    await gw.complete(AGENT, auth.decision.decision_id,
                      CallOutcome(auth.decision.decision_id, ok=True, output={"text": "hello"}))
    records = await gw.audit.read(decision_id=auth.decision.decision_id)
    assert [r.type for r in records] == ["call.decided", "call.completed"]
    decided = records[0].data
    assert decided["effect"] == "allow" and decided["args_digest"] == auth.decision.args_digest
    assert decided["policy_revision"] == gw.policy.revision and decided["rule_ids"]
    assert "hello" not in str(records[1].data)
    log = await gw.decisions_for_grant(AGENT, g.grant_id)
    assert len(log) == 1 and log[0]["decision_id"] == auth.decision.decision_id
    with pytest.raises(GatewayError):
        await gw.complete(AGENT, auth.decision.decision_id,
                          CallOutcome(auth.decision.decision_id, ok=True, output={}))


async def test_policy_reload_is_audited_and_swaps_atomically(gw):
    old = gw.policy
    from policies.loader import load_policy_files, default_pack_paths

    new = load_policy_files(default_pack_paths()[:1])
    await gw.reload_policy(new, actor="admin:ada")
    assert gw.policy is new
    rec = [r for r in await gw.audit.read() if r.type == "policy.loaded"][-1]
    assert rec.data["revision"] == new.revision and rec.data["previous"] == old.revision


def test_ids_are_unique_and_differ_after_fork():
    import os

    from gateway.ids import new_id

    ids = {new_id("x") for _ in range(20_000)}
    assert len(ids) == 20_000
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, new_id("c").encode())
        os._exit(0)
    mine = new_id("c")
    os.waitpid(pid, 0)
    assert os.read(r, 100).decode() != mine
