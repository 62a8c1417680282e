"""Per-call approvals: a `review` decision waits for a reviewer to approve that exact call.

An approval is bound to agent, grant, tool and argument digest, expires, and is consumed by
the one call it allows (compare-and-set in the store, so twice is impossible).
"""

from __future__ import annotations

from dataclasses import replace

from .clock import Clock
from .errors import GatewayError
from .model import ApprovalStatus, CallApproval, Principal, Role
from .ports import ApprovalStore, AuditEvent, AuditLog

__all__ = ["CallApprovals", "APPROVAL_WINDOW_S"]

APPROVAL_WINDOW_S = 3600.0


class CallApprovals:
    def __init__(self, store: ApprovalStore, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    async def list(self, principal: Principal, status: str | None = "pending") -> list[CallApproval]:
        if principal.role is Role.AGENT:
            raise GatewayError("forbidden", "only reviewers list approvals")
        return await self._store.list(status=status)

    async def decide(self, principal: Principal, approval_id: str, approve: bool) -> CallApproval:
        if principal.role not in (Role.REVIEWER, Role.ADMIN):
            raise GatewayError("forbidden", "only a reviewer or an admin may decide approvals")
        approval = await self._store.get(approval_id)
        if approval is None:
            raise GatewayError("approval_not_found", f"no approval {approval_id}")
        if approval.agent_id == principal.id:
            raise GatewayError("self_approval", "nobody approves their own call")
        if approval.expires_at <= self._clock.now():
            raise GatewayError("approval_not_pending", "the approval request has lapsed")
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED
        ok = await self._store.set_status(approval_id, status.value, principal.id,
                                          expected=ApprovalStatus.PENDING.value)
        if not ok:
            raise GatewayError("approval_not_pending", "the approval was already decided")
        await self._audit.append(AuditEvent(
            type="call.approved" if approve else "call.approval_denied", actor=principal.id,
            grant_id=approval.grant_id, decision_id=approval.decision_id, ts=self._clock.now(),
            data={"approval_id": approval_id, "tool": approval.tool,
                  "args_digest": approval.args_digest}))
        return replace(approval, status=status, approver=principal.id)
