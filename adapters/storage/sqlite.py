"""The embedded default: every store over one SQLite file `<data_dir>/jitgate.db`.

One gateway process owns the file (the grant store keeps a write-through cache and the audit
chain head lives in the engine); several replicas must share PostgreSQL instead.
`verify_sqlite` and `read_sqlite_audit` read the file synchronously for the CLI, without a
running gateway.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from gateway.audit import Checkpoint, Signer
from gateway.clock import Clock, SystemClock
from gateway.model import CallApproval, Grant, Lease
from gateway.ports import ConcurrentUpdate, KeyRecord, StoreUnavailable

from .records import lease_insert
from .records import (approval_from_dict, approval_to_dict, dumps, grant_from_dict,
                      grant_to_dict, key_from_dict, key_to_dict, lease_from_dict)
from .sqlite_audit import (SqliteAuditLog, iter_sqlite_audit, read_sqlite_audit,
                           read_sqlite_checkpoints, verify_sqlite)
from .sqlite_engine import DB_FILE, SqliteEngine

__all__ = [
    "SqliteGrantStore",
    "SqliteApprovalStore",
    "SqliteKeyStore",
    "SqliteAuditLog",
    "SqliteLeaseStore",
    "SqliteToolPinStore",
    "SqliteStores",
    "open_sqlite",
    "read_sqlite_audit",
    "read_sqlite_checkpoints",
    "iter_sqlite_audit",
    "verify_sqlite",
]

_GRANT_CACHE_MAX = 50_000

# One statement, no JSON round trip in Python: a lease is revoked once, the first reason stays.
_REVOKE_LEASE = ("UPDATE leases SET body = json_set(body, '$.revoked', json('true'), "
                 "'$.revoked_reason', ?) WHERE lease_id = ? "
                 "AND coalesce(json_extract(body, '$.revoked'), 0) = 0")


def _sv(v: Any) -> str:
    return str(getattr(v, "value", v))


def _grant_row(row: Sequence[Any]) -> Grant:
    g = grant_from_dict(json.loads(row[0]))
    return replace(g, version=row[1], calls_used=row[2])


class SqliteGrantStore:
    """Grants with a write-through cache: one read per authorized call stays in process.

    Other processes may change a grant in the same file (an admin revokes through `jitgate
    serve` while `jitgate mcp` runs): once the file has changed elsewhere, a cached grant is
    used again only after its stored version is read back and found equal.
    """

    def __init__(self, engine: SqliteEngine) -> None:
        self._e = engine
        self._cache: dict[str, Grant] = {}
        self._checked: set[str] = set()  # cached and current since the last change elsewhere

    def _remember(self, g: Grant) -> None:
        if len(self._cache) >= _GRANT_CACHE_MAX and g.grant_id not in self._cache:
            self._checked.discard(self._cache.pop(next(iter(self._cache))).grant_id)
        self._cache[g.grant_id] = g
        self._checked.add(g.grant_id)

    def _current(self, grant_id: str, since_own_commit: bool = False) -> Grant | None:
        """The cached grant if it is still the stored one."""
        if self._e.changed_elsewhere(since_own_commit=since_own_commit):
            self._checked.clear()
        hit = self._cache.get(grant_id)
        if hit is None or grant_id in self._checked:
            return hit
        row = self._e.read_now(lambda c: c.execute(
            "SELECT version FROM grants WHERE grant_id = ?", (grant_id,)).fetchone())
        if row is not None and row[0] == hit.version:
            self._checked.add(grant_id)
            return hit
        self._cache.pop(grant_id, None)
        return None

    async def create(self, grant: Grant) -> None:
        def fn(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO grants (grant_id, agent_id, status, version, calls_used, "
                          "created_at, body) VALUES (?,?,?,?,?,?,?)",
                          (grant.grant_id, grant.agent_id, grant.status.value, grant.version,
                           grant.calls_used, grant.created_at, dumps(grant_to_dict(grant))))
            except sqlite3.IntegrityError as exc:
                raise ConcurrentUpdate(f"grant {grant.grant_id} already exists") from exc
        await self._e.write(fn)
        self._remember(grant)

    async def get(self, grant_id: str) -> Grant | None:
        if self._e.closed:
            raise StoreUnavailable("the SQLite store is closed")
        hit = self._current(grant_id)
        if hit is not None:
            return hit

        def fn(c: sqlite3.Connection) -> Grant | None:
            row = c.execute("SELECT body, version, calls_used FROM grants WHERE grant_id = ?",
                            (grant_id,)).fetchone()
            return _grant_row(row) if row else None
        g = await self._e.read(fn)
        if g is not None and grant_id not in self._cache:  # never overwrite a newer write
            self._remember(g)
        return self._cache.get(grant_id, g)

    async def recheck(self, grant_id: str) -> Grant | None:
        """The grant as stored, read after this process's latest commit."""
        if self._e.closed:
            raise StoreUnavailable("the SQLite store is closed")
        hit = self._current(grant_id, since_own_commit=True)
        return hit if hit is not None else await self.get(grant_id)

    async def update(self, grant: Grant, expected_version: int) -> None:
        def fn(c: sqlite3.Connection) -> None:
            cur = c.execute("UPDATE grants SET agent_id = ?, status = ?, version = ?, "
                            "calls_used = ?, body = ? WHERE grant_id = ? AND version = ?",
                            (grant.agent_id, grant.status.value, grant.version, grant.calls_used,
                             dumps(grant_to_dict(grant)), grant.grant_id, expected_version))
            if cur.rowcount != 1:
                raise ConcurrentUpdate(f"grant {grant.grant_id} changed")
        try:
            await self._e.write(fn)
        except ConcurrentUpdate:
            self._cache.pop(grant.grant_id, None)
            self._checked.discard(grant.grant_id)
            raise
        self._remember(grant)

    async def list(self, agent_id: str | None = None, status: str | None = None,
                   limit: int = 100) -> list[Grant]:
        where, args = [], []
        if agent_id is not None:
            where.append("agent_id = ?")
            args.append(agent_id)
        if status is not None:
            where.append("status = ?")
            args.append(_sv(status))
        sql = "SELECT body, version, calls_used FROM grants"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, grant_id LIMIT ?"

        def fn(c: sqlite3.Connection) -> list[Grant]:
            return [_grant_row(r) for r in c.execute(sql, (*args, limit))]
        return await self._e.read(fn)

    async def consume_call(self, grant_id: str) -> int:
        """Add one call; bumps the version so a stale update() loses (no lost increment)."""
        def fn(c: sqlite3.Connection) -> tuple[int, int]:
            row = c.execute("UPDATE grants SET calls_used = calls_used + 1, version = version + 1"
                            " WHERE grant_id = ? RETURNING calls_used, version",
                            (grant_id,)).fetchone()
            if row is None:
                raise KeyError(grant_id)
            return row[0], row[1]
        used, version = await self._e.write(fn)
        hit = self._cache.get(grant_id)
        if hit is not None and hit.version == version - 1:  # our increment on the cached grant
            self._cache[grant_id] = replace(hit, calls_used=used, version=version)
        elif hit is not None and hit.version < version:  # changed elsewhere too: read it again
            self._cache.pop(grant_id, None)
            self._checked.discard(grant_id)
        return used


class SqliteApprovalStore:
    def __init__(self, engine: SqliteEngine) -> None:
        self._e = engine

    async def create(self, approval: CallApproval) -> None:
        a = approval

        def fn(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO approvals (approval_id, agent_id, grant_id, tool, "
                          "args_digest, status, created_at, body) VALUES (?,?,?,?,?,?,?,?)",
                          (a.approval_id, a.agent_id, a.grant_id, a.tool, a.args_digest,
                           a.status.value, a.created_at, dumps(approval_to_dict(a))))
            except sqlite3.IntegrityError as exc:
                raise ConcurrentUpdate(f"approval {a.approval_id} already exists") from exc
        await self._e.write(fn)

    async def get(self, approval_id: str) -> CallApproval | None:
        def fn(c: sqlite3.Connection) -> CallApproval | None:
            row = c.execute("SELECT body FROM approvals WHERE approval_id = ?",
                            (approval_id,)).fetchone()
            return approval_from_dict(json.loads(row[0])) if row else None
        return await self._e.read(fn)

    async def find(self, agent_id: str, grant_id: str | None, tool: str,
                   args_digest: str) -> CallApproval | None:
        def fn(c: sqlite3.Connection) -> CallApproval | None:
            row = c.execute("SELECT body FROM approvals WHERE agent_id = ? AND tool = ? AND "
                            "args_digest = ? AND grant_id IS ? AND status != 'consumed' "
                            "ORDER BY created_at DESC, n DESC LIMIT 1",
                            (agent_id, tool, args_digest, grant_id)).fetchone()
            return approval_from_dict(json.loads(row[0])) if row else None
        return await self._e.read(fn)

    async def set_status(self, approval_id: str, status: str, approver: str = "",
                         expected: str | None = None) -> bool:
        new = _sv(status)

        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT body, status FROM approvals WHERE approval_id = ?",
                            (approval_id,)).fetchone()
            if row is None or (expected is not None and row[1] != _sv(expected)):
                return False
            d = json.loads(row[0])
            d["status"] = new
            if approver:
                d["approver"] = approver
            approval_from_dict(d)  # validates the status value
            c.execute("UPDATE approvals SET status = ?, body = ? WHERE approval_id = ?",
                      (new, dumps(d), approval_id))
            return True
        return await self._e.write(fn)

    async def list(self, status: str | None = None, limit: int = 100) -> list[CallApproval]:
        def fn(c: sqlite3.Connection) -> list[CallApproval]:
            if status is None:
                rows = c.execute("SELECT body FROM approvals ORDER BY created_at DESC, n DESC "
                                 "LIMIT ?", (limit,))
            else:
                rows = c.execute("SELECT body FROM approvals WHERE status = ? "
                                 "ORDER BY created_at DESC, n DESC LIMIT ?", (_sv(status), limit))
            return [approval_from_dict(json.loads(r[0])) for r in rows]
        return await self._e.read(fn)


class SqliteKeyStore:
    def __init__(self, engine: SqliteEngine) -> None:
        self._e = engine

    async def add(self, record: KeyRecord) -> None:
        def fn(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO agent_keys (key_id, created_at, body) VALUES (?,?,?)",
                          (record.key_id, record.created_at, dumps(key_to_dict(record))))
            except sqlite3.IntegrityError as exc:
                raise ConcurrentUpdate(f"key {record.key_id} already exists") from exc
        await self._e.write(fn)

    async def get(self, key_id: str) -> KeyRecord | None:
        def fn(c: sqlite3.Connection) -> KeyRecord | None:
            row = c.execute("SELECT body FROM agent_keys WHERE key_id = ?", (key_id,)).fetchone()
            return key_from_dict(json.loads(row[0])) if row else None
        return await self._e.read(fn)

    async def list(self) -> list[KeyRecord]:
        def fn(c: sqlite3.Connection) -> list[KeyRecord]:
            rows = c.execute("SELECT body FROM agent_keys ORDER BY created_at, key_id")
            return [key_from_dict(json.loads(r[0])) for r in rows]
        return await self._e.read(fn)

    async def disable(self, key_id: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT body FROM agent_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is not None:
                d = json.loads(row[0])
                d["disabled"] = True
                c.execute("UPDATE agent_keys SET body = ? WHERE key_id = ?", (dumps(d), key_id))
        await self._e.write(fn)


class SqliteLeaseStore:
    def __init__(self, engine: SqliteEngine) -> None:
        self._e = engine

    def shares_engine_with(self, audit: Any) -> bool:
        """True when `audit` writes to the same file: then a decision and its lease can be
        written in one transaction (`SqliteAuditLog.append_with_lease`)."""
        return getattr(audit, "_e", None) is self._e

    async def add(self, lease: Lease) -> None:
        try:
            await self._e.insert(*lease_insert(lease))
        except sqlite3.IntegrityError as exc:
            raise ConcurrentUpdate(f"lease {lease.lease_id} already exists") from exc

    async def get(self, lease_id: str) -> Lease | None:
        def fn(c: sqlite3.Connection) -> Lease | None:
            row = c.execute("SELECT body FROM leases WHERE lease_id = ?", (lease_id,)).fetchone()
            return lease_from_dict(json.loads(row[0])) if row else None
        return await self._e.read(fn)

    async def list_for_grant(self, grant_id: str, live_only: bool = False,
                             now: float | None = None) -> list[Lease]:
        def fn(c: sqlite3.Connection) -> list[Lease]:
            rows = c.execute("SELECT body FROM leases WHERE grant_id = ? "
                             "ORDER BY issued_at, lease_id", (grant_id,))
            return [lease_from_dict(json.loads(r[0])) for r in rows]
        out = await self._e.read(fn)
        if live_only:
            out = [x for x in out if not x.revoked and (now is None or x.expires_at > now)]
        return out

    async def revoke(self, lease_id: str, reason: str) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            return c.execute(_REVOKE_LEASE, (reason, lease_id)).rowcount == 1
        return await self._e.write(fn)


class SqliteToolPinStore:
    def __init__(self, engine: SqliteEngine) -> None:
        self._e = engine

    async def get(self, tool: str) -> str | None:
        def fn(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT fingerprint FROM tool_pins WHERE tool = ?", (tool,)).fetchone()
            return row[0] if row else None
        return await self._e.read(fn)

    async def pin(self, tool: str, fingerprint: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO tool_pins (tool, fingerprint) VALUES (?, ?) "
                      "ON CONFLICT (tool) DO UPDATE SET fingerprint = excluded.fingerprint",
                      (tool, fingerprint))
        await self._e.write(fn)


@dataclass
class SqliteStores:
    grants: SqliteGrantStore
    approvals: SqliteApprovalStore
    keys: SqliteKeyStore
    audit: SqliteAuditLog
    leases: SqliteLeaseStore
    pins: SqliteToolPinStore
    engine: SqliteEngine

    async def checkpoints(self) -> list[Checkpoint]:
        return await self.audit.read_checkpoints()

    async def close(self) -> None:
        """Write the closing checkpoint and stop the threads; later calls raise StoreUnavailable."""
        await self.engine.close()


def open_sqlite(data_dir: str | os.PathLike[str], signer: Signer | None = None,
                checkpoint_every: int = 100, clock: Clock | None = None,
                busy_timeout_ms: int = 5000, sync: str = "full") -> SqliteStores:
    """Open (and create) `<data_dir>/jitgate.db`; call `await stores.close()` at shutdown."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    engine = SqliteEngine(d / DB_FILE, clock=clock or SystemClock(), signer=signer,
                          checkpoint_every=checkpoint_every, busy_timeout_ms=busy_timeout_ms,
                          sync=sync)
    return SqliteStores(grants=SqliteGrantStore(engine), approvals=SqliteApprovalStore(engine),
                        keys=SqliteKeyStore(engine), audit=SqliteAuditLog(engine),
                        leases=SqliteLeaseStore(engine), pins=SqliteToolPinStore(engine),
                        engine=engine)
