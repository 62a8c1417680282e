"""Grants: request, approval paths, renewal with step-up, revocation, expiry.

Policy picks the approval path from the tier of the requested scope. Every state change is a
compare-and-set on the stored grant and an audit event; an audit failure aborts the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

from policies.conditions import ConditionError
from policies.engine import PolicySet
from policies.scope import compile_scope, scope_within

from .clock import Clock
from .errors import GatewayError
from .ids import new_id
from .model import TERMINAL_GRANT_STATES, Grant, GrantStatus, Principal, Role, ScopeItem
from .ports import AuditEvent, AuditLog, ConcurrentUpdate, GrantStore

__all__ = ["GrantRequest", "RenewRequest", "GrantService", "MAX_OBJECTIVE_CHARS", "PENDING_WINDOW_S"]

MAX_OBJECTIVE_CHARS = 4000
MAX_SCOPE_ITEMS = 100
PENDING_WINDOW_S = 24 * 3600  # a request nobody approves lapses after a day
# A revocation that loses a compare-and-set (a call counted meanwhile) re-reads and tries again.
REVOKE_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class GrantRequest:
    objective: str
    scope: Sequence[Mapping[str, Any]]
    ttl_s: int
    call_budget: int | None = None
    reason: str = ""
    ticket: str = ""
    owner: str = ""
    justification: str = ""


@dataclass(frozen=True, slots=True)
class RenewRequest:
    ttl_s: int | None = None
    scope: Sequence[Mapping[str, Any]] | None = None
    justification: str = ""


def _scope_items(compiled: Sequence[Any]) -> tuple[ScopeItem, ...]:
    return tuple(ScopeItem(tool=c.tool, args=c.as_dict().get("args", {})) for c in compiled)


def _is_reviewer(p: Principal) -> bool:
    return p.role in (Role.REVIEWER, Role.ADMIN)


GrantListener = Callable[[Grant], Awaitable[None]]


class GrantService:
    def __init__(self, store: GrantStore, audit: AuditLog, clock: Clock,
                 policy: Callable[[], PolicySet]) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._policy = policy
        self._listeners: list[GrantListener] = []

    def on_change(self, listener: GrantListener) -> None:
        self._listeners.append(listener)

    async def _notify(self, grant: Grant) -> None:
        for listener in self._listeners:
            await listener(grant)

    async def _record(self, type_: str, actor: str, grant: Grant, **data: Any) -> None:
        await self._audit.append(AuditEvent(type=type_, actor=actor, grant_id=grant.grant_id,
                                            data={"status": grant.status.value, **data},
                                            ts=self._clock.now()))

    # -- reading -------------------------------------------------------------------------

    async def get(self, principal: Principal, grant_id: str) -> Grant:
        grant = await self._store.get(grant_id)
        if grant is None:
            raise GatewayError("grant_not_found", f"no grant {grant_id}")
        if principal.role is Role.AGENT and grant.agent_id != principal.id:
            raise GatewayError("grant_not_found", f"no grant {grant_id}")  # never confirm others'
        return grant

    async def list(self, principal: Principal, status: str | None = None,
                   limit: int = 100) -> list[Grant]:
        agent = principal.id if principal.role is Role.AGENT else None
        return await self._store.list(agent_id=agent, status=status, limit=limit)

    # -- requesting ----------------------------------------------------------------------

    def _compile(self, scope: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
        if not scope:
            raise GatewayError("invalid_scope", "the scope names no tool")
        if len(scope) > MAX_SCOPE_ITEMS:
            raise GatewayError("invalid_scope", f"at most {MAX_SCOPE_ITEMS} scope items")
        try:
            return compile_scope(scope)
        except ConditionError as exc:
            raise GatewayError("invalid_scope", exc.message, details={"reason": exc.code}) from None

    def _check_ceiling(self, policy: PolicySet, role_name: str, compiled: Sequence[Any]) -> Any:
        role = policy.role(role_name)
        if role is None:
            raise GatewayError("scope_exceeds_ceiling", f"role {role_name!r} may not hold grants",
                               details={"too_broad": "*"})
        ok, detail = scope_within(compiled, role.ceiling)
        if not ok:
            raise GatewayError("scope_exceeds_ceiling",
                               f"the scope is beyond the ceiling of role {role_name!r}: {detail}",
                               details={"too_broad": detail})
        tier = policy.tier_for_scope(compiled)
        if tier.rank > policy.tiers[role.max_tier].rank:
            raise GatewayError("tier_exceeds_ceiling",
                               f"the scope needs tier {tier.name}, above role {role_name!r}'s "
                               f"ceiling {role.max_tier}",
                               details={"tier": tier.name, "max_tier": role.max_tier})
        return role, tier

    async def _drifted_before(self, agent_id: str) -> bool:
        revoked = await self._store.list(agent_id=agent_id, status=GrantStatus.REVOKED.value,
                                         limit=1000)
        return any(g.revoked_reason == "drift" for g in revoked)

    async def request(self, principal: Principal, req: GrantRequest, *, role_name: str,
                      parent: Grant | None = None) -> Grant:
        objective = (req.objective or "").strip()
        if not objective:
            raise GatewayError("invalid_request", "objective must not be empty")
        if len(objective) > MAX_OBJECTIVE_CHARS:
            raise GatewayError("invalid_request", f"objective is over {MAX_OBJECTIVE_CHARS} chars")
        if req.ttl_s is None or int(req.ttl_s) <= 0:
            raise GatewayError("invalid_request", "ttl_s must be a positive number of seconds")
        if req.call_budget is not None and req.call_budget <= 0:
            raise GatewayError("invalid_request", "call_budget must be positive")
        policy = self._policy()
        compiled = self._compile(req.scope)
        role, tier = self._check_ceiling(policy, role_name, compiled)
        if req.ttl_s > tier.max_ttl_s:
            raise GatewayError("ttl_exceeds_tier",
                               f"ttl_s {req.ttl_s} is over the {tier.name} tier's ceiling of "
                               f"{tier.max_ttl_s}s", details={"max_ttl_s": tier.max_ttl_s})
        approval, required = tier.approval, tier.approvals_required
        if tier.requires_justification and not req.justification.strip():
            raise GatewayError("justification_required",
                               f"tier {tier.name} is break-glass: a justification is required")
        forced = False
        if required == 0 and role.approval_after_drift and await self._drifted_before(principal.id):
            approval, required, forced = "one_human", 1, True
        now = self._clock.now()
        active = required == 0
        grant = Grant(
            grant_id=new_id("grt"),
            agent_id=principal.id,
            objective=objective,
            scope=_scope_items(compiled),
            tier=tier.name,
            approval=approval,
            status=GrantStatus.ACTIVE if active else GrantStatus.PENDING,
            created_at=now,
            ttl_s=int(req.ttl_s),
            expires_at=now + (req.ttl_s if active else PENDING_WINDOW_S),
            requested_by=principal.id,
            owner=req.owner,
            reason=req.reason,
            ticket=req.ticket,
            justification=req.justification,
            call_budget=req.call_budget,
            approvals_required=required,
            break_glass=tier.approvals_required >= 2,
            parent_grant_id=parent.grant_id if parent else None,
            policy_revision=policy.revision,
        )
        await self._record("grant.requested", principal.id, grant, objective=objective,
                           scope=[s.as_dict() for s in grant.scope], tier=tier.name,
                           approval=approval, ttl_s=grant.ttl_s, reason=req.reason,
                           ticket=req.ticket, owner=req.owner, call_budget=req.call_budget,
                           justification=req.justification, parent=grant.parent_grant_id,
                           approval_forced_after_drift=forced, policy_revision=policy.revision)
        await self._store.create(grant)
        if active:
            await self._record("grant.approved", "policy", grant, approver="policy",
                               path="auto", expires_at=grant.expires_at)
            await self._notify(grant)
        return grant

    # -- approval ------------------------------------------------------------------------

    async def _update(self, old: Grant, new: Grant, recorded: str) -> Grant:
        """Store a change whose record (`recorded`) is already written. If the grant changed
        meanwhile, the trail says so right after that record, and the caller gets `conflict`."""
        try:
            await self._store.update(new, expected_version=old.version)
        except ConcurrentUpdate:
            await self._record("grant.change_lost", "gateway", old, lost=recorded,
                               reason="the grant changed meanwhile; the change was not made")
            raise GatewayError("conflict", "the grant changed meanwhile; read it and retry") from None
        return new

    async def approve(self, principal: Principal, grant_id: str, note: str = "") -> Grant:
        if not _is_reviewer(principal):
            raise GatewayError("forbidden", "only a reviewer or an admin may approve")
        grant = await self.get(principal, grant_id)
        now = self._clock.now()
        if grant.effective_status(now) is not GrantStatus.PENDING:
            raise GatewayError("grant_not_pending", f"the grant is {grant.effective_status(now).value}")
        if principal.id in (grant.agent_id, grant.requested_by):
            raise GatewayError("self_approval", "nobody approves their own grant")
        if principal.id in grant.approvers:
            raise GatewayError("already_approved",
                               "this reviewer already approved; break-glass needs a second, "
                               "different approver")
        approvers = (*grant.approvers, principal.id)
        done = len(approvers) >= grant.approvals_required
        new = grant.evolve(
            approvers=approvers,
            status=GrantStatus.ACTIVE if done else GrantStatus.PENDING,
            expires_at=now + grant.ttl_s if done else grant.expires_at,
            review_required=grant.break_glass,
        )
        await self._record("grant.approved" if done else "grant.approval_added", principal.id, new,
                           approver=principal.id, note=note, approvals=len(approvers),
                           approvals_required=grant.approvals_required,
                           expires_at=new.expires_at)
        await self._update(grant, new, "grant.approved" if done else "grant.approval_added")
        if done:
            await self._notify(new)
        return new

    async def deny(self, principal: Principal, grant_id: str, reason: str = "") -> Grant:
        if not _is_reviewer(principal):
            raise GatewayError("forbidden", "only a reviewer or an admin may deny")
        grant = await self.get(principal, grant_id)
        if grant.effective_status(self._clock.now()) is not GrantStatus.PENDING:
            raise GatewayError("grant_not_pending", f"the grant is {grant.status.value}")
        if principal.id in (grant.agent_id, grant.requested_by):
            raise GatewayError("self_approval", "nobody decides on their own grant")
        new = grant.evolve(status=GrantStatus.DENIED)
        await self._record("grant.denied", principal.id, new, reason=reason)
        await self._update(grant, new, "grant.denied")
        await self._notify(new)
        return new

    # -- ending --------------------------------------------------------------------------

    async def revoke(self, principal: Principal | None, grant_id: str, reason: str,
                     *, code: str = "revoked", evidence: Mapping[str, Any] | None = None,
                     leases: Sequence[str] = ()) -> Grant:
        """Revoke a grant. `principal` None means the gateway itself (drift, expiry)."""
        if principal is not None:
            grant = await self.get(principal, grant_id)
            if principal.role is Role.AGENT and grant.agent_id != principal.id:
                raise GatewayError("grant_not_found", f"no grant {grant_id}")
        else:
            found = await self._store.get(grant_id)
            if found is None:
                raise GatewayError("grant_not_found", f"no grant {grant_id}")
            grant = found
        if grant.status in TERMINAL_GRANT_STATES:
            if grant.status is GrantStatus.REVOKED:
                return grant
            raise GatewayError("grant_not_active", f"the grant is {grant.status.value}")
        new = grant.evolve(status=GrantStatus.REVOKED, revoked_reason=code)
        actor = principal.id if principal else "gateway"
        await self._record("grant.revoked", actor, new, reason=reason, code=code,
                           evidence=dict(evidence or {}), leases=list(leases))
        # A revocation is not given up for a concurrent change (a call counted against the
        # budget bumps the version): it re-reads and applies itself to the fresh grant.
        for _ in range(REVOKE_ATTEMPTS):
            try:
                await self._store.update(new, expected_version=grant.version)
                break
            except ConcurrentUpdate:
                fresh = await self._store.get(grant_id)
                if fresh is None:
                    raise GatewayError("grant_not_found", f"no grant {grant_id}") from None
                if fresh.status in TERMINAL_GRANT_STATES:
                    await self._notify(fresh)
                    return fresh  # ended meanwhile (revoked, expired, exhausted): nothing to do
                grant = fresh
                new = fresh.evolve(status=GrantStatus.REVOKED, revoked_reason=code)
        else:
            await self._record("grant.change_lost", "gateway", grant, lost="grant.revoked",
                               reason="the grant kept changing; the revocation was not stored")
            raise GatewayError("conflict", "the grant kept changing; revoke it again")
        await self._notify(new)
        return new

    async def mark_expired(self, grant: Grant) -> Grant:
        """Record the expiry the clock already enforces (once; losing a race is fine)."""
        if grant.status not in (GrantStatus.ACTIVE, GrantStatus.PENDING):
            return grant
        return await self._mark(grant, GrantStatus.EXPIRED, "grant.expired",
                                expired_at=grant.expires_at)

    async def mark_exhausted(self, grant: Grant) -> Grant:
        return await self._mark(grant, GrantStatus.EXHAUSTED, "grant.exhausted",
                                calls_used=grant.calls_used)

    async def _mark(self, grant: Grant, status: GrantStatus, event: str, **data: Any) -> Grant:
        """A state the gateway itself records; whoever loses the race leaves it to the winner."""
        new = grant.evolve(status=status)
        try:
            await self._store.update(new, expected_version=grant.version)
        except ConcurrentUpdate:
            return grant
        await self._record(event, "gateway", new, **data)
        await self._notify(new)
        return new

    # -- renewal -------------------------------------------------------------------------

    async def renew(self, principal: Principal, grant_id: str, req: RenewRequest, *,
                    role_name: str) -> Grant:
        grant = await self.get(principal, grant_id)
        if principal.role is Role.AGENT and grant.agent_id != principal.id:
            raise GatewayError("grant_not_found", f"no grant {grant_id}")
        now = self._clock.now()
        status = grant.effective_status(now)
        if status is not GrantStatus.ACTIVE:
            raise GatewayError("grant_not_renewable",
                               f"a {status.value} grant cannot be renewed; request a new grant")
        policy = self._policy()
        old_scope = compile_scope([s.as_dict() for s in grant.scope])
        new_scope_raw = req.scope if req.scope is not None else [s.as_dict() for s in grant.scope]
        new_scope = self._compile(new_scope_raw)
        role, tier = self._check_ceiling(policy, role_name, new_scope)
        ttl = int(req.ttl_s) if req.ttl_s is not None else grant.ttl_s
        if ttl <= 0:
            raise GatewayError("invalid_request", "ttl_s must be positive")
        if ttl > tier.max_ttl_s:
            raise GatewayError("ttl_exceeds_tier", f"ttl_s {ttl} is over the {tier.name} tier's "
                               f"ceiling of {tier.max_ttl_s}s", details={"max_ttl_s": tier.max_ttl_s})
        narrowing, _ = scope_within(new_scope, old_scope)
        new_expiry = now + ttl
        within_ceiling = (new_expiry - grant.created_at) <= tier.max_ttl_s
        if narrowing and within_ceiling:
            new = grant.evolve(scope=_scope_items(new_scope), expires_at=new_expiry, ttl_s=ttl)
            await self._record("grant.renewed", principal.id, new, path="narrowing",
                               scope=[s.as_dict() for s in new.scope], expires_at=new.expires_at)
            await self._update(grant, new, "grant.renewed")
            return new
        # Widening or extension past the tier ceiling: a fresh request through the approval path.
        child = await self.request(principal, GrantRequest(
            objective=grant.objective, scope=new_scope_raw, ttl_s=ttl,
            call_budget=grant.call_budget, reason=grant.reason, ticket=grant.ticket,
            owner=grant.owner, justification=req.justification or grant.justification,
        ), role_name=role_name, parent=grant)
        await self._record("grant.renewed", principal.id, grant, path="step_up",
                           successor=child.grant_id, successor_status=child.status.value)
        return child

    async def add_call(self, grant: Grant) -> int:
        return await self._store.consume_call(grant.grant_id)
