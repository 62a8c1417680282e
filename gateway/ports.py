"""The ports: every stateful need of the core as a Protocol.

Each has an in-memory implementation and real ones (adapters/storage), all run through one
contract suite (tests/contracts). Any method may raise `StoreUnavailable`; the pipeline turns
that into a deny, never an allow.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from .model import CallApproval, Credential, Grant, Lease, Principal, ToolCall

__all__ = [
    "WRITE_BEHIND",
    "StoreUnavailable",
    "ConcurrentUpdate",
    "GrantStore",
    "ApprovalStore",
    "KeyRecord",
    "KeyStore",
    "AuditEvent",
    "AuditRecord",
    "AuditLog",
    "LeaseStore",
    "CredentialIssuer",
    "MintRequest",
    "ToolPinStore",
    "RevocationBus",
]


# True while writing records whose caller answers nobody on their account (outcomes recorded
# after the answer went back): a store may make such writes durable with its next sync (within
# milliseconds) instead of paying a sync of their own. Their commit is still awaited.
WRITE_BEHIND: ContextVar[bool] = ContextVar("jitgate_write_behind", default=False)


class StoreUnavailable(Exception):
    """A backend could not be reached or could not complete the operation."""


class ConcurrentUpdate(Exception):
    """A compare-and-set lost: the record changed since it was read."""


class GrantStore(Protocol):
    async def create(self, grant: Grant) -> None: ...

    async def get(self, grant_id: str) -> Grant | None: ...

    async def recheck(self, grant_id: str) -> Grant | None:
        """`get`, for a caller that has just written (a lease): it must see every change
        committed anywhere before its own write (a store may share one check among them)."""
        ...

    async def update(self, grant: Grant, expected_version: int) -> None:
        """Replace the grant if its stored version is `expected_version`, else ConcurrentUpdate."""
        ...

    async def list(self, agent_id: str | None = None, status: str | None = None,
                   limit: int = 100) -> list[Grant]: ...

    async def consume_call(self, grant_id: str) -> int:
        """Atomically add one to calls_used and return the new count."""
        ...


class ApprovalStore(Protocol):
    async def create(self, approval: CallApproval) -> None: ...

    async def get(self, approval_id: str) -> CallApproval | None: ...

    async def find(self, agent_id: str, grant_id: str | None, tool: str,
                   args_digest: str) -> CallApproval | None:
        """The newest non-consumed approval for this exact call, if any."""
        ...

    async def set_status(self, approval_id: str, status: str, approver: str = "",
                         expected: str | None = None) -> bool:
        """Set the status; with `expected`, only if the current status equals it (CAS)."""
        ...

    async def list(self, status: str | None = None, limit: int = 100) -> list[CallApproval]: ...


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    principal: Principal
    key_hash: str  # hex HMAC/SHA-256 of the secret; the secret itself is never stored
    created_at: float
    disabled: bool = False


class KeyStore(Protocol):
    async def add(self, record: KeyRecord) -> None: ...

    async def get(self, key_id: str) -> KeyRecord | None: ...

    async def list(self) -> list[KeyRecord]: ...

    async def disable(self, key_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What the core asks to record; the log adds seq, time, prev_hash and hash."""

    type: str  # grant.requested, grant.approved, call.decided, call.completed, policy.loaded...
    actor: str
    data: Mapping[str, Any]
    grant_id: str | None = None
    decision_id: str | None = None
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    event_id: str
    ts: float
    type: str
    actor: str
    grant_id: str | None
    decision_id: str | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "ts": self.ts,
            "type": self.type,
            "actor": self.actor,
            "grant_id": self.grant_id,
            "decision_id": self.decision_id,
            "data": dict(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class AuditLog(Protocol):
    async def append(self, event: AuditEvent) -> AuditRecord:
        """Durable before it returns (group commit allowed); raises StoreUnavailable on failure."""
        ...

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]: ...

    async def read(self, after_seq: int = 0, limit: int = 1000, grant_id: str | None = None,
                   decision_id: str | None = None) -> list[AuditRecord]: ...

    async def head(self) -> tuple[int, str]:
        """(last seq, last hash); (0, GENESIS) when empty."""
        ...


class LeaseStore(Protocol):
    async def add(self, lease: Lease) -> None: ...

    async def get(self, lease_id: str) -> Lease | None: ...

    async def list_for_grant(self, grant_id: str, live_only: bool = False,
                             now: float | None = None) -> list[Lease]: ...

    async def revoke(self, lease_id: str, reason: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class MintRequest:
    call: ToolCall
    decision_id: str
    args_digest: str
    ttl_s: float
    audience: str
    lease_id: str
    now: float
    # issuer-specific settings from policy/config (e.g. postgres privileges, secret names)
    options: Mapping[str, Any] = field(default_factory=dict)

    def lease(self, kind: str) -> Lease:
        """The lease the core asked for: its id, its TTL from the tier/policy, its grant."""
        return Lease(lease_id=self.lease_id, grant_id=self.call.grant_id,
                     agent_id=self.call.agent.id, tool=self.call.tool, kind=kind,
                     issued_at=self.now, expires_at=self.now + float(self.ttl_s),
                     decision_id=self.decision_id)


@runtime_checkable
class CredentialIssuer(Protocol):
    kind: str

    async def mint(self, request: MintRequest) -> Credential:
        """Create the credential; raise on failure (the pipeline denies credential_unavailable)."""
        ...

    async def release(self, lease: Lease, reason: str) -> None:
        """End the lease early (after the call, on revocation). Idempotent."""
        ...


class ToolPinStore(Protocol):
    async def get(self, tool: str) -> str | None: ...

    async def pin(self, tool: str, fingerprint: str) -> None: ...


class RevocationBus(Protocol):
    """Fan-out of revocations to every replica (in process, or Redis pub/sub)."""

    async def publish(self, grant_id: str, reason: str) -> None: ...

    def subscribe(self, callback: Any) -> None: ...
