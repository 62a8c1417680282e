"""The core nouns: principals, tool calls, grants, decisions, approvals, leases.

Plain frozen dataclasses so `decide()` can take them without any IO or framework.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

__all__ = [
    "Role",
    "Principal",
    "ToolCall",
    "ScopeItem",
    "GrantStatus",
    "Grant",
    "Effect",
    "Decision",
    "ApprovalStatus",
    "CallApproval",
    "Lease",
    "Credential",
    "CallOutcome",
    "DriftSignal",
]


class Role(str, enum.Enum):
    AGENT = "agent"
    REVIEWER = "reviewer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. Authentication produced it; it grants nothing by itself."""

    id: str
    role: Role
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call as the gateway sees it, whatever edge it came from."""

    agent: Principal
    tool: str
    arguments: Mapping[str, Any]
    grant_id: str | None = None
    call_id: str | None = None
    session_id: str | None = None
    # Upstream MCP annotations (read_only, destructive, open_world, idempotent), if known.
    annotations: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScopeItem:
    """One tool (name or glob) and the constraints its arguments must meet.

    `args` maps an argument name or a JSON pointer ("/a/b") to a constraint dict
    such as {"prefix": "/workspace"} (see policies.conditions).
    """

    tool: str
    args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": {k: dict(v) for k, v in self.args.items()}}


class GrantStatus(str, enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    DENIED = "denied"
    EXPIRED = "expired"
    REVOKED = "revoked"
    EXHAUSTED = "exhausted"


TERMINAL_GRANT_STATES = frozenset(
    {GrantStatus.DENIED, GrantStatus.EXPIRED, GrantStatus.REVOKED, GrantStatus.EXHAUSTED}
)


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: str
    agent_id: str
    objective: str
    scope: tuple[ScopeItem, ...]
    tier: str
    approval: str  # auto | one_human | two_humans
    status: GrantStatus
    created_at: float
    ttl_s: int
    expires_at: float
    requested_by: str
    owner: str = ""
    reason: str = ""
    ticket: str = ""
    justification: str = ""
    call_budget: int | None = None
    calls_used: int = 0
    approvers: tuple[str, ...] = ()
    approvals_required: int = 0
    break_glass: bool = False
    review_required: bool = False  # forced review after use (break-glass)
    used: bool = False
    revoked_reason: str = ""  # code, e.g. "revoked_by_user", "drift"
    parent_grant_id: str | None = None
    policy_revision: str = ""
    version: int = 1

    def evolve(self, **changes: Any) -> "Grant":
        return replace(self, version=self.version + 1, **changes)

    def effective_status(self, now: float) -> GrantStatus:
        """The status the clock implies: an active grant past its expiry is expired."""
        if self.status in (GrantStatus.ACTIVE, GrantStatus.PENDING) and now >= self.expires_at:
            return GrantStatus.EXPIRED
        return self.status

    def public(self, now: float | None = None) -> dict[str, Any]:
        status = self.effective_status(now) if now is not None else self.status
        return {
            "grant_id": self.grant_id,
            "agent_id": self.agent_id,
            "objective": self.objective,
            "scope": [s.as_dict() for s in self.scope],
            "tier": self.tier,
            "approval": self.approval,
            "status": status.value,
            "created_at": self.created_at,
            "ttl_s": self.ttl_s,
            "expires_at": self.expires_at,
            "requested_by": self.requested_by,
            "owner": self.owner,
            "reason": self.reason,
            "ticket": self.ticket,
            "justification": self.justification,
            "call_budget": self.call_budget,
            "calls_used": self.calls_used,
            "approvers": list(self.approvers),
            "approvals_required": self.approvals_required,
            "break_glass": self.break_glass,
            "review_required": self.review_required,
            "revoked_reason": self.revoked_reason,
            "parent_grant_id": self.parent_grant_id,
            "policy_revision": self.policy_revision,
        }


class Effect(str, enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    REVIEW = "review"
    THROTTLE = "throttle"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one call. Deny is a value, never an exception."""

    decision_id: str
    effect: Effect
    code: str
    reasons: tuple[str, ...]
    rule_ids: tuple[str, ...]
    policy_revision: str
    tool: str
    agent_id: str
    args_digest: str
    grant_id: str | None = None
    tier: str = ""
    retry_after: float | None = None
    approval_id: str | None = None
    # set by decide() when an approved review is consumed by this call
    consumes_approval: str | None = None
    # the drift score crossed the policy threshold on this call: the grant is to be revoked
    revoke_grant: bool = False
    signals: tuple["DriftSignal", ...] = ()

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "effect": self.effect.value,
            "code": self.code,
            "reasons": list(self.reasons),
            "rule_ids": list(self.rule_ids),
            "policy_revision": self.policy_revision,
            "tool": self.tool,
            "grant_id": self.grant_id,
            "tier": self.tier,
            "args_digest": self.args_digest,
        }
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.approval_id is not None:
            out["approval_id"] = self.approval_id
        if self.revoke_grant:
            out["grant_revoked"] = True
        return out


class ApprovalStatus(str, enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CONSUMED = "consumed"


@dataclass(frozen=True, slots=True)
class CallApproval:
    """A single-use approval bound to one exact call (grant, tool, argument digest)."""

    approval_id: str
    agent_id: str
    grant_id: str | None
    tool: str
    args_digest: str
    decision_id: str
    status: ApprovalStatus
    created_at: float
    expires_at: float
    approver: str = ""
    redacted_args: Mapping[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "approval_id": self.approval_id,
            "agent_id": self.agent_id,
            "grant_id": self.grant_id,
            "tool": self.tool,
            "args_digest": self.args_digest,
            "decision_id": self.decision_id,
            "status": self.status.value,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "approver": self.approver,
            "arguments": dict(self.redacted_args),
        }


@dataclass(frozen=True, slots=True)
class Lease:
    """The core's record of one live credential. Never holds the secret itself."""

    lease_id: str
    grant_id: str | None
    agent_id: str
    tool: str
    kind: str  # "jwt", "secret", "postgres", ...
    issued_at: float
    expires_at: float
    decision_id: str
    revoked: bool = False
    revoked_reason: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "grant_id": self.grant_id,
            "agent_id": self.agent_id,
            "tool": self.tool,
            "kind": self.kind,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "decision_id": self.decision_id,
            "revoked": self.revoked,
            "revoked_reason": self.revoked_reason,
        }


@dataclass(frozen=True, slots=True)
class Credential:
    """What an issuer hands out for one allowed call.

    `value` is given to the tool (or the agent, for call tokens); `forward` holds material only
    the forwarder may use (injected headers, env, connection strings). Neither is ever logged.
    """

    lease: Lease
    value: str | None = None
    forward: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print secrets
        return f"Credential(lease={self.lease.lease_id!r}, kind={self.lease.kind!r})"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What came back from the tool, reported for audit and the drift detectors."""

    decision_id: str
    ok: bool
    output: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DriftSignal:
    detector: str
    weight: float
    code: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "weight": self.weight,
            "code": self.code,
            "evidence": dict(self.evidence),
        }
