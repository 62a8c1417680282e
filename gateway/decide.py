"""The one pure decision function.

`decide()` awaits nothing and reads no clock, environment or store: everything it needs comes in
`Facts`, gathered by the pipeline in one round beforehand. Given the same call, facts and policy
it always returns the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from policies.engine import PolicySet, RuleContext, verdict

from .model import (
    ApprovalStatus,
    CallApproval,
    Decision,
    DriftSignal,
    Effect,
    Grant,
    GrantStatus,
    ToolCall,
)

__all__ = ["Facts", "Throttle", "decide", "policy_role"]


@dataclass(frozen=True, slots=True)
class Throttle:
    retry_after: float
    code: str  # rate_limited | retry_backoff
    limit_id: str = ""


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything `decide()` may know about one call, gathered before it runs."""

    now: float
    decision_id: str
    args_digest: str
    grant: Grant | None = None
    grant_scope: Sequence | None = None  # compiled scope of `grant` (policies CompiledScopeItem)
    approval: CallApproval | None = None  # newest approval bound to this exact call
    new_approval_id: str | None = None  # id to use if this call needs review
    tool_changed: bool = False
    invalid_arguments: str | None = None  # schema error summary from the edge, if any
    throttle: Throttle | None = None
    drift_score: float = 0.0
    new_signals: tuple[DriftSignal, ...] = ()
    drift_threshold: float | None = None
    # An earlier decision revoked this grant for drift but the grant is still active (the
    # revocation did not reach the store): every call is denied and the revocation retried.
    drift_revoked: bool = False


def policy_role(call: ToolCall) -> str:
    """The policy role of the caller: an explicit attribute, else its authentication role."""
    explicit = call.agent.attributes.get("policy_role") if call.agent.attributes else None
    return str(explicit) if explicit else call.agent.role.value


_GRANT_STATE_CODES = {
    GrantStatus.PENDING: "grant_pending",
    GrantStatus.DENIED: "grant_denied",
    GrantStatus.EXPIRED: "grant_expired",
    GrantStatus.EXHAUSTED: "grant_exhausted",
}


_EFFECTS = {e.value: e for e in Effect}


class _Out:
    """Builds the decision for one call (a small class, not a closure made per call)."""

    __slots__ = ("call", "facts", "policy", "tier")

    def __init__(self, call: ToolCall, facts: Facts, policy: PolicySet, tier: str) -> None:
        self.call, self.facts, self.policy, self.tier = call, facts, policy, tier

    def __call__(self, effect: Effect, code: str, reasons: Sequence[str],
                 rule_ids: Sequence[str] = (), **extra: object) -> Decision:
        call, facts = self.call, self.facts
        return Decision(facts.decision_id, effect, code, tuple(reasons), tuple(rule_ids),
                        self.policy.revision, call.tool, call.agent.id, facts.args_digest,
                        call.grant_id, self.tier, signals=facts.new_signals,
                        **extra)  # type: ignore[arg-type]


def decide(call: ToolCall, facts: Facts, policy: PolicySet) -> Decision:
    out = _Out(call, facts, policy, policy.tier_of(call.tool).name)
    tier = out.tier

    if facts.invalid_arguments is not None:
        return out(Effect.DENY, "invalid_arguments", [facts.invalid_arguments], ["schema"])
    if facts.tool_changed:
        return out(Effect.DENY, "tool_changed",
                   [f"the definition of {call.tool} changed since it was pinned; an admin must re-pin it"],
                   ["tool_pin"])

    grant = facts.grant
    if call.grant_id is not None:
        if grant is None:
            return out(Effect.DENY, "grant_not_found", [f"no grant {call.grant_id}"], ["grant"])
        if grant.agent_id != call.agent.id:
            return out(Effect.DENY, "grant_not_owned", ["the grant belongs to another agent"], ["grant"])
        status = grant.effective_status(facts.now)
        if status is GrantStatus.REVOKED:
            if grant.revoked_reason == "drift":
                return out(Effect.DENY, "grant_revoked_drift",
                           ["the grant was revoked because the agent drifted from its objective"],
                           ["drift"])
            return out(Effect.DENY, "grant_revoked",
                       [f"the grant was revoked ({grant.revoked_reason or 'revoked'})"], ["grant"])
        if status is not GrantStatus.ACTIVE:
            return out(Effect.DENY, _GRANT_STATE_CODES.get(status, "grant_revoked"),
                       [f"the grant is {status.value}"], ["grant"])
        if grant.call_budget is not None and grant.calls_used >= grant.call_budget:
            return out(Effect.DENY, "grant_exhausted",
                       [f"the grant's budget of {grant.call_budget} calls is used up"], ["grant"])
        if facts.drift_revoked:
            return out(Effect.DENY, "grant_revoked_drift",
                       ["the grant was revoked because the agent drifted from its objective"],
                       ["drift"], revoke_grant=True)

    if facts.throttle is not None:
        t = facts.throttle
        why = ("this call was denied moments ago; retry later" if t.code == "retry_backoff"
               else "too many calls in the current window")
        return out(Effect.THROTTLE, t.code, [why], [t.limit_id or "rate_limit"],
                   retry_after=round(t.retry_after, 3))

    ctx = RuleContext(
        agent_id=call.agent.id,
        role=policy_role(call),
        attributes=call.agent.attributes,
        tool=call.tool,
        arguments=call.arguments,
        tier=tier,
        annotations=call.annotations,
        now=facts.now,
    )
    scope = facts.grant_scope if grant is not None else None
    effect_s, code, rule_ids, reasons = verdict(policy, ctx, scope)
    effect = _EFFECTS[effect_s]

    drifted = _drift_crossed(grant, facts)
    if drifted is not None:
        score_reason, drift_rules = drifted
        if effect is Effect.DENY:
            # The call is refused on its merits; the grant is revoked as well.
            return out(Effect.DENY, code, [*reasons, score_reason], [*rule_ids, *drift_rules],
                       revoke_grant=True)
        signal_reasons = [f"{s.detector}: {s.code}" for s in facts.new_signals if s.weight > 0]
        return out(Effect.DENY, "grant_revoked_drift", [score_reason, *signal_reasons],
                   drift_rules, revoke_grant=True)
    if effect is not Effect.DENY and any(s.code == "detector_unavailable" for s in facts.new_signals):
        return out(Effect.DENY, "detector_unavailable",
                   ["a required drift detector could not judge this call, so it is denied"],
                   ["drift"])

    if effect is Effect.REVIEW:
        approval = facts.approval
        if approval is not None and approval.expires_at > facts.now:
            if approval.status is ApprovalStatus.APPROVED:
                return out(Effect.ALLOW, "allowed_by_approval",
                           [*reasons, f"approved by {approval.approver} for this exact call"],
                           [*rule_ids, f"approval:{approval.approval_id}"],
                           consumes_approval=approval.approval_id)
            if approval.status is ApprovalStatus.PENDING:
                return out(Effect.REVIEW, "approval_pending",
                           [*reasons, "approval for this exact call is pending"], rule_ids,
                           approval_id=approval.approval_id)
            if approval.status is ApprovalStatus.DENIED:
                return out(Effect.DENY, "approval_denied",
                           [*reasons, "a reviewer refused this exact call"], rule_ids)
        return out(Effect.REVIEW, code, reasons, rule_ids, approval_id=facts.new_approval_id)

    if effect is Effect.ALLOW and grant is not None and grant.break_glass:
        reasons = [*reasons, "break-glass grant: this call is flagged for review after use"]
    return out(effect, code, reasons, rule_ids)


def _drift_crossed(grant: Grant | None, facts: Facts) -> tuple[str, list[str]] | None:
    if grant is None or facts.drift_threshold is None or not facts.new_signals:
        return None
    score = facts.drift_score + sum(s.weight for s in facts.new_signals)
    if score < facts.drift_threshold:
        return None
    reason = (f"drift score {score:.2f} reached the threshold {facts.drift_threshold:.2f}: "
              "the grant is revoked")
    return reason, ["drift", *sorted({f"drift:{s.detector}" for s in facts.new_signals if s.weight > 0})]
