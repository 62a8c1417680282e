"""In-memory stores: the reference semantics of every port, for tests and embedding.

Every store can be made to fail (`fail_next(n)` or `broken = True`) so fail-closed paths can be
tested: the failing call raises StoreUnavailable and changes nothing.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import (GENESIS, Checkpoint, Signer, VerifyReport, make_checkpoint, seal,
                           verify_chain)
from gateway.clock import Clock, SystemClock
from gateway.ids import new_id
from gateway.model import ApprovalStatus, CallApproval, Grant, Lease
from gateway.ports import AuditEvent, AuditRecord, ConcurrentUpdate, KeyRecord, StoreUnavailable

__all__ = [
    "MemoryStores",
    "open_memory",
    "MemoryGrantStore",
    "MemoryApprovalStore",
    "MemoryKeyStore",
    "MemoryAuditLog",
    "MemoryLeaseStore",
    "MemoryToolPinStore",
]


class _Faults:
    """Fault injection shared by the memory stores."""

    def __init__(self) -> None:
        self.broken = False
        self._fail = 0

    def fail_next(self, n: int = 1) -> None:
        """Make the next `n` calls raise StoreUnavailable."""
        self._fail += n

    def _check(self) -> None:
        if self.broken:
            raise StoreUnavailable("store unavailable")
        if self._fail > 0:
            self._fail -= 1
            raise StoreUnavailable("store unavailable")


class MemoryGrantStore(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self._grants: dict[str, Grant] = {}

    async def create(self, grant: Grant) -> None:
        self._check()
        if grant.grant_id in self._grants:
            raise ConcurrentUpdate(f"grant {grant.grant_id} already exists")
        self._grants[grant.grant_id] = grant

    async def recheck(self, grant_id: str) -> Grant | None:
        return await self.get(grant_id)

    async def get(self, grant_id: str) -> Grant | None:
        self._check()
        return self._grants.get(grant_id)

    async def update(self, grant: Grant, expected_version: int) -> None:
        self._check()
        cur = self._grants.get(grant.grant_id)
        if cur is None or cur.version != expected_version:
            raise ConcurrentUpdate(f"grant {grant.grant_id} changed")
        self._grants[grant.grant_id] = grant

    async def list(self, agent_id: str | None = None, status: str | None = None,
                   limit: int = 100) -> list[Grant]:
        self._check()
        out = [g for g in self._grants.values()
               if (agent_id is None or g.agent_id == agent_id)
               and (status is None or g.status.value == str(getattr(status, "value", status)))]
        out.sort(key=lambda g: g.created_at, reverse=True)
        return out[:limit]

    async def consume_call(self, grant_id: str) -> int:
        """Add one call; bumps the version so a stale update() loses (no lost increment)."""
        self._check()
        cur = self._grants.get(grant_id)
        if cur is None:
            raise KeyError(grant_id)
        nxt = replace(cur, calls_used=cur.calls_used + 1, version=cur.version + 1)
        self._grants[grant_id] = nxt
        return nxt.calls_used


class MemoryApprovalStore(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self._items: dict[str, CallApproval] = {}
        self._order: dict[str, int] = {}

    async def create(self, approval: CallApproval) -> None:
        self._check()
        if approval.approval_id in self._items:
            raise ConcurrentUpdate(f"approval {approval.approval_id} already exists")
        self._items[approval.approval_id] = approval
        self._order[approval.approval_id] = len(self._order)

    async def get(self, approval_id: str) -> CallApproval | None:
        self._check()
        return self._items.get(approval_id)

    async def find(self, agent_id: str, grant_id: str | None, tool: str,
                   args_digest: str) -> CallApproval | None:
        self._check()
        hits = [a for a in self._items.values()
                if a.agent_id == agent_id and a.grant_id == grant_id and a.tool == tool
                and a.args_digest == args_digest and a.status is not ApprovalStatus.CONSUMED]
        if not hits:
            return None
        return max(hits, key=lambda a: (a.created_at, self._order[a.approval_id]))

    async def set_status(self, approval_id: str, status: str, approver: str = "",
                         expected: str | None = None) -> bool:
        self._check()
        cur = self._items.get(approval_id)
        if cur is None:
            return False
        if expected is not None and cur.status.value != str(getattr(expected, "value", expected)):
            return False
        new = ApprovalStatus(status)
        self._items[approval_id] = replace(cur, status=new, approver=approver or cur.approver)
        return True

    async def list(self, status: str | None = None, limit: int = 100) -> list[CallApproval]:
        self._check()
        want = None if status is None else str(getattr(status, "value", status))
        out = [a for a in self._items.values() if want is None or a.status.value == want]
        out.sort(key=lambda a: (a.created_at, self._order[a.approval_id]), reverse=True)
        return out[:limit]


class MemoryKeyStore(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[str, KeyRecord] = {}

    async def add(self, record: KeyRecord) -> None:
        self._check()
        if record.key_id in self._keys:
            raise ConcurrentUpdate(f"key {record.key_id} already exists")
        self._keys[record.key_id] = record

    async def get(self, key_id: str) -> KeyRecord | None:
        self._check()
        return self._keys.get(key_id)

    async def list(self) -> list[KeyRecord]:
        self._check()
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    async def disable(self, key_id: str) -> None:
        self._check()
        cur = self._keys.get(key_id)
        if cur is not None:
            self._keys[key_id] = replace(cur, disabled=True)


class MemoryLeaseStore(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self._leases: dict[str, Lease] = {}

    async def add(self, lease: Lease) -> None:
        self._check()
        if lease.lease_id in self._leases:
            raise ConcurrentUpdate(f"lease {lease.lease_id} already exists")
        self._leases[lease.lease_id] = lease

    async def get(self, lease_id: str) -> Lease | None:
        self._check()
        return self._leases.get(lease_id)

    async def list_for_grant(self, grant_id: str, live_only: bool = False,
                             now: float | None = None) -> list[Lease]:
        self._check()
        out = [x for x in self._leases.values() if x.grant_id == grant_id]
        if live_only:
            out = [x for x in out if not x.revoked and (now is None or x.expires_at > now)]
        return sorted(out, key=lambda x: (x.issued_at, x.lease_id))

    async def revoke(self, lease_id: str, reason: str) -> bool:
        self._check()
        cur = self._leases.get(lease_id)
        if cur is None or cur.revoked:
            return False
        self._leases[lease_id] = replace(cur, revoked=True, revoked_reason=reason)
        return True


class MemoryToolPinStore(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self._pins: dict[str, str] = {}

    async def get(self, tool: str) -> str | None:
        self._check()
        return self._pins.get(tool)

    async def pin(self, tool: str, fingerprint: str) -> None:
        self._check()
        self._pins[tool] = fingerprint


class MemoryAuditLog(_Faults):
    """The chain in a list; `records` is in stored order (tests may tamper with it)."""

    def __init__(self, signer: Signer | None = None, checkpoint_every: int = 100,
                 clock: Clock | None = None) -> None:
        super().__init__()
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.clock = clock or SystemClock()
        self.records: list[AuditRecord] = []
        self.checkpoints: list[Checkpoint] = []
        self._seq = 0
        self._hash = GENESIS
        self.closed = False

    async def append(self, event: AuditEvent) -> AuditRecord:
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if self.closed:
            raise StoreUnavailable("audit log closed")
        self._check()
        seq, prev = self._seq, self._hash
        out: list[AuditRecord] = []
        for ev in events:  # seal everything first: a bad event appends nothing
            seq += 1
            rec = seal(ev, seq, prev, ev.ts or self.clock.now(), new_id("evt"))
            prev = rec.hash
            out.append(rec)
        for rec in out:
            self.records.append(rec)
            if self.signer and self.checkpoint_every > 0 and rec.seq % self.checkpoint_every == 0:
                self.checkpoints.append(make_checkpoint(self.signer, rec.seq, rec.hash,
                                                        self.clock.now()))
        self._seq, self._hash = seq, prev
        return out

    async def read(self, after_seq: int = 0, limit: int = 1000, grant_id: str | None = None,
                   decision_id: str | None = None) -> list[AuditRecord]:
        self._check()
        out: list[AuditRecord] = []
        start = bisect.bisect_right(self.records, after_seq, key=lambda r: r.seq)
        for rec in self.records[start:]:
            if grant_id is not None and rec.grant_id != grant_id:
                continue
            if decision_id is not None and rec.decision_id != decision_id:
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    async def head(self) -> tuple[int, str]:
        self._check()
        return self._seq, self._hash

    async def read_checkpoints(self) -> list[Checkpoint]:
        return list(self.checkpoints)

    async def close(self) -> None:
        """Checkpoint the head (if a signer is set) and refuse further appends."""
        if self.closed:
            return
        if self.signer and self._seq and (not self.checkpoints
                                          or self.checkpoints[-1].seq != self._seq):
            self.checkpoints.append(make_checkpoint(self.signer, self._seq, self._hash,
                                                    self.clock.now()))
        self.closed = True

    async def verify(self, public_keys: Mapping[str, Ed25519PublicKey] | None = None
                     ) -> VerifyReport:
        """verify_chain over the stored list (keys default to the signer's own)."""
        get = getattr(self.signer, "public_keys", None)
        keys = public_keys if public_keys is not None else (get() if callable(get) else {})
        every = self.checkpoint_every if self.signer is not None else None
        return verify_chain(self.records, self.checkpoints, keys, checkpoint_every=every or None)


@dataclass
class MemoryStores:
    """Every in-memory store of one gateway, shaped like `SqliteStores` / `PostgresStores`."""

    grants: MemoryGrantStore
    approvals: MemoryApprovalStore
    keys: MemoryKeyStore
    audit: MemoryAuditLog
    leases: MemoryLeaseStore
    pins: MemoryToolPinStore

    async def close(self) -> None:
        await self.audit.close()  # the closing checkpoint


def open_memory(signer: Signer | None = None, checkpoint_every: int = 100,
                clock: Clock | None = None) -> MemoryStores:
    return MemoryStores(MemoryGrantStore(), MemoryApprovalStore(), MemoryKeyStore(),
                        MemoryAuditLog(signer, checkpoint_every, clock), MemoryLeaseStore(),
                        MemoryToolPinStore())
