"""Lossless dict forms of the stored nouns (grants, approvals, leases, keys) for the SQL stores."""

from __future__ import annotations

import json
from typing import Any, Mapping

import orjson

from gateway.model import (ApprovalStatus, CallApproval, Grant, GrantStatus, Lease, Principal,
                           Role, ScopeItem)
from gateway.ports import KeyRecord

__all__ = [
    "grant_to_dict",
    "grant_from_dict",
    "approval_to_dict",
    "approval_from_dict",
    "lease_to_dict",
    "lease_from_dict",
    "key_to_dict",
    "key_from_dict",
    "dumps", "lease_insert", "LEASE_INSERT", "RECORD_COLUMNS"]


def dumps(value: Any) -> str:
    """Compact JSON text for a stored column (not hashed: the chain hashes canonical JSON).
    orjson where it can (several times faster), the json module for what it refuses (integers
    beyond 64 bits, non-string keys)."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def grant_to_dict(g: Grant) -> dict[str, Any]:
    return {
        "grant_id": g.grant_id, "agent_id": g.agent_id, "objective": g.objective,
        "scope": [s.as_dict() for s in g.scope], "tier": g.tier, "approval": g.approval,
        "status": g.status.value, "created_at": g.created_at, "ttl_s": g.ttl_s,
        "expires_at": g.expires_at, "requested_by": g.requested_by, "owner": g.owner,
        "reason": g.reason, "ticket": g.ticket, "justification": g.justification,
        "call_budget": g.call_budget, "calls_used": g.calls_used,
        "approvers": list(g.approvers), "approvals_required": g.approvals_required,
        "break_glass": g.break_glass, "review_required": g.review_required, "used": g.used,
        "revoked_reason": g.revoked_reason, "parent_grant_id": g.parent_grant_id,
        "policy_revision": g.policy_revision, "version": g.version,
    }


def grant_from_dict(d: Mapping[str, Any]) -> Grant:
    scope = tuple(ScopeItem(tool=s["tool"], args={k: dict(v) for k, v in s.get("args", {}).items()})
                  for s in d["scope"])
    return Grant(
        grant_id=d["grant_id"], agent_id=d["agent_id"], objective=d["objective"], scope=scope,
        tier=d["tier"], approval=d["approval"], status=GrantStatus(d["status"]),
        created_at=d["created_at"], ttl_s=d["ttl_s"], expires_at=d["expires_at"],
        requested_by=d["requested_by"], owner=d.get("owner", ""), reason=d.get("reason", ""),
        ticket=d.get("ticket", ""), justification=d.get("justification", ""),
        call_budget=d.get("call_budget"), calls_used=d.get("calls_used", 0),
        approvers=tuple(d.get("approvers", ())),
        approvals_required=d.get("approvals_required", 0),
        break_glass=d.get("break_glass", False), review_required=d.get("review_required", False),
        used=d.get("used", False), revoked_reason=d.get("revoked_reason", ""),
        parent_grant_id=d.get("parent_grant_id"), policy_revision=d.get("policy_revision", ""),
        version=d.get("version", 1),
    )


def approval_to_dict(a: CallApproval) -> dict[str, Any]:
    return {
        "approval_id": a.approval_id, "agent_id": a.agent_id, "grant_id": a.grant_id,
        "tool": a.tool, "args_digest": a.args_digest, "decision_id": a.decision_id,
        "status": a.status.value, "created_at": a.created_at, "expires_at": a.expires_at,
        "approver": a.approver, "redacted_args": dict(a.redacted_args),
    }


def approval_from_dict(d: Mapping[str, Any]) -> CallApproval:
    return CallApproval(
        approval_id=d["approval_id"], agent_id=d["agent_id"], grant_id=d.get("grant_id"),
        tool=d["tool"], args_digest=d["args_digest"], decision_id=d["decision_id"],
        status=ApprovalStatus(d["status"]), created_at=d["created_at"],
        expires_at=d["expires_at"], approver=d.get("approver", ""),
        redacted_args=dict(d.get("redacted_args") or {}),
    )


def lease_to_dict(x: Lease) -> dict[str, Any]:
    return {
        "lease_id": x.lease_id, "grant_id": x.grant_id, "agent_id": x.agent_id, "tool": x.tool,
        "kind": x.kind, "issued_at": x.issued_at, "expires_at": x.expires_at,
        "decision_id": x.decision_id, "revoked": x.revoked, "revoked_reason": x.revoked_reason,
    }


def lease_from_dict(d: Mapping[str, Any]) -> Lease:
    return Lease(
        lease_id=d["lease_id"], grant_id=d.get("grant_id"), agent_id=d["agent_id"],
        tool=d["tool"], kind=d["kind"], issued_at=d["issued_at"], expires_at=d["expires_at"],
        decision_id=d["decision_id"], revoked=bool(d.get("revoked", False)),
        revoked_reason=d.get("revoked_reason", ""),
    )


def key_to_dict(k: KeyRecord) -> dict[str, Any]:
    p = k.principal
    return {
        "key_id": k.key_id, "key_hash": k.key_hash, "created_at": k.created_at,
        "disabled": k.disabled,
        "principal": {"id": p.id, "role": p.role.value, "name": p.name,
                      "attributes": dict(p.attributes)},
    }


def key_from_dict(d: Mapping[str, Any]) -> KeyRecord:
    p = d["principal"]
    principal = Principal(id=p["id"], role=Role(p["role"]), name=p.get("name", ""),
                          attributes=dict(p.get("attributes") or {}))
    return KeyRecord(key_id=d["key_id"], principal=principal, key_hash=d["key_hash"],
                     created_at=d["created_at"], disabled=bool(d.get("disabled", False)))


# The audit record columns, in the order every backend stores them.
RECORD_COLUMNS = "seq, event_id, ts, type, actor, grant_id, decision_id, data, prev_hash, hash"

LEASE_INSERT = "INSERT INTO leases (lease_id, grant_id, issued_at, body) VALUES (?,?,?,?)"


def lease_insert(lease: Lease) -> tuple[str, tuple[Any, ...]]:
    """The SQLite row of a new lease (written alone, or with the decision that minted it)."""
    return LEASE_INSERT, (lease.lease_id, lease.grant_id, lease.issued_at,
                          dumps(lease_to_dict(lease)))
