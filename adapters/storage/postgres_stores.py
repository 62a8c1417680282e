"""The PostgreSQL grant, approval, key, lease and tool-pin stores (see postgres.py)."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, AsyncIterator, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gateway.model import ApprovalStatus, CallApproval, Grant, Lease
from gateway.ports import ConcurrentUpdate, KeyRecord, StoreUnavailable

from .records import (approval_from_dict, approval_to_dict, dumps, grant_from_dict,
                      grant_to_dict, key_from_dict, key_to_dict, lease_from_dict, lease_to_dict)

__all__ = ["Pool", "PgGrantStore", "PgApprovalStore", "PgKeyStore", "PgLeaseStore",
           "PgToolPinStore"]


def _sv(v: Any) -> str:
    return str(getattr(v, "value", v))


class Pool:
    """The connection pool with every driver failure mapped to StoreUnavailable."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.raw = pool
        self.closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self.closed:
            raise StoreUnavailable("the PostgreSQL store is closed")
        try:
            async with self.raw.connection() as conn:
                yield conn
        except psycopg.errors.UniqueViolation as exc:
            raise ConcurrentUpdate("already exists") from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL failed: {type(exc).__name__}") from exc

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.connection() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return await cur.fetchall() if cur.description else []

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self.connection() as conn:
            cur = await conn.execute(sql, args)  # type: ignore[arg-type]
            return cur.rowcount

    async def close(self) -> None:
        self.closed = True
        await self.raw.close()


def _grant(row: Sequence[Any]) -> Grant:
    return replace(grant_from_dict(json.loads(row[0])), version=row[1], calls_used=row[2])


class PgGrantStore:
    def __init__(self, pool: Pool) -> None:
        self._p = pool

    async def create(self, grant: Grant) -> None:
        await self._p.execute(
            "INSERT INTO grants (grant_id, agent_id, status, version, calls_used, created_at, "
            "body) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            (grant.grant_id, grant.agent_id, grant.status.value, grant.version,
             grant.calls_used, grant.created_at, dumps(grant_to_dict(grant))))

    async def recheck(self, grant_id: str) -> Grant | None:
        return await self.get(grant_id)

    async def get(self, grant_id: str) -> Grant | None:
        rows = await self._p.fetch("SELECT body, version, calls_used FROM grants "
                                   "WHERE grant_id = %s", (grant_id,))
        return _grant(rows[0]) if rows else None

    async def update(self, grant: Grant, expected_version: int) -> None:
        n = await self._p.execute(
            "UPDATE grants SET agent_id = %s, status = %s, version = %s, calls_used = %s, "
            "body = %s WHERE grant_id = %s AND version = %s",
            (grant.agent_id, grant.status.value, grant.version, grant.calls_used,
             dumps(grant_to_dict(grant)), grant.grant_id, expected_version))
        if n != 1:
            raise ConcurrentUpdate(f"grant {grant.grant_id} changed")

    async def list(self, agent_id: str | None = None, status: str | None = None,
                   limit: int = 100) -> list[Grant]:
        where, args = [], []
        if agent_id is not None:
            where.append("agent_id = %s")
            args.append(agent_id)
        if status is not None:
            where.append("status = %s")
            args.append(_sv(status))
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._p.fetch(f"SELECT body, version, calls_used FROM grants{cond} "
                                   "ORDER BY created_at DESC, grant_id LIMIT %s", (*args, limit))
        return [_grant(r) for r in rows]

    async def consume_call(self, grant_id: str) -> int:
        """Add one call; bumps the version so a stale update() loses (no lost increment)."""
        rows = await self._p.fetch("UPDATE grants SET calls_used = calls_used + 1, "
                                   "version = version + 1 WHERE grant_id = %s "
                                   "RETURNING calls_used", (grant_id,))
        if not rows:
            raise KeyError(grant_id)
        return int(rows[0][0])


def _approval(row: Sequence[Any]) -> CallApproval:
    d = json.loads(row[0])
    d["status"], d["approver"] = row[1], row[2]
    return approval_from_dict(d)


class PgApprovalStore:
    def __init__(self, pool: Pool) -> None:
        self._p = pool

    async def create(self, approval: CallApproval) -> None:
        a = approval
        await self._p.execute(
            "INSERT INTO approvals (approval_id, agent_id, grant_id, tool, args_digest, status, "
            "approver, created_at, body) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (a.approval_id, a.agent_id, a.grant_id, a.tool, a.args_digest, a.status.value,
             a.approver, a.created_at, dumps(approval_to_dict(a))))

    async def get(self, approval_id: str) -> CallApproval | None:
        rows = await self._p.fetch("SELECT body, status, approver FROM approvals "
                                   "WHERE approval_id = %s", (approval_id,))
        return _approval(rows[0]) if rows else None

    async def find(self, agent_id: str, grant_id: str | None, tool: str,
                   args_digest: str) -> CallApproval | None:
        rows = await self._p.fetch(
            "SELECT body, status, approver FROM approvals WHERE agent_id = %s AND tool = %s "
            "AND args_digest = %s AND grant_id IS NOT DISTINCT FROM %s "
            "AND status <> 'consumed' ORDER BY created_at DESC, n DESC LIMIT 1",
            (agent_id, tool, args_digest, grant_id))
        return _approval(rows[0]) if rows else None

    async def set_status(self, approval_id: str, status: str, approver: str = "",
                         expected: str | None = None) -> bool:
        new = ApprovalStatus(_sv(status)).value
        sql = ("UPDATE approvals SET status = %s, "
               "approver = CASE WHEN %s = '' THEN approver ELSE %s END WHERE approval_id = %s")
        args: list[Any] = [new, approver, approver, approval_id]
        if expected is not None:
            sql += " AND status = %s"
            args.append(_sv(expected))
        return await self._p.execute(sql, args) == 1

    async def list(self, status: str | None = None, limit: int = 100) -> list[CallApproval]:
        if status is None:
            rows = await self._p.fetch("SELECT body, status, approver FROM approvals "
                                       "ORDER BY created_at DESC, n DESC LIMIT %s", (limit,))
        else:
            rows = await self._p.fetch("SELECT body, status, approver FROM approvals "
                                       "WHERE status = %s ORDER BY created_at DESC, n DESC "
                                       "LIMIT %s", (_sv(status), limit))
        return [_approval(r) for r in rows]


class PgKeyStore:
    def __init__(self, pool: Pool) -> None:
        self._p = pool

    async def add(self, record: KeyRecord) -> None:
        await self._p.execute("INSERT INTO agent_keys (key_id, created_at, disabled, body) "
                              "VALUES (%s,%s,%s,%s)", (record.key_id, record.created_at,
                                                       record.disabled,
                                                       dumps(key_to_dict(record))))

    @staticmethod
    def _key(row: Sequence[Any]) -> KeyRecord:
        return replace(key_from_dict(json.loads(row[0])), disabled=bool(row[1]))

    async def get(self, key_id: str) -> KeyRecord | None:
        rows = await self._p.fetch("SELECT body, disabled FROM agent_keys WHERE key_id = %s",
                                   (key_id,))
        return self._key(rows[0]) if rows else None

    async def list(self) -> list[KeyRecord]:
        rows = await self._p.fetch("SELECT body, disabled FROM agent_keys "
                                   "ORDER BY created_at, key_id")
        return [self._key(r) for r in rows]

    async def disable(self, key_id: str) -> None:
        await self._p.execute("UPDATE agent_keys SET disabled = true WHERE key_id = %s",
                              (key_id,))


class PgLeaseStore:
    def __init__(self, pool: Pool) -> None:
        self._p = pool

    @staticmethod
    def _lease(row: Sequence[Any]) -> Lease:
        return replace(lease_from_dict(json.loads(row[0])), revoked=bool(row[1]),
                       revoked_reason=row[2])

    async def add(self, lease: Lease) -> None:
        await self._p.execute("INSERT INTO leases (lease_id, grant_id, issued_at, revoked, "
                              "revoked_reason, body) VALUES (%s,%s,%s,%s,%s,%s)",
                              (lease.lease_id, lease.grant_id, lease.issued_at, lease.revoked,
                               lease.revoked_reason, dumps(lease_to_dict(lease))))

    async def get(self, lease_id: str) -> Lease | None:
        rows = await self._p.fetch("SELECT body, revoked, revoked_reason FROM leases "
                                   "WHERE lease_id = %s", (lease_id,))
        return self._lease(rows[0]) if rows else None

    async def list_for_grant(self, grant_id: str, live_only: bool = False,
                             now: float | None = None) -> list[Lease]:
        rows = await self._p.fetch("SELECT body, revoked, revoked_reason FROM leases "
                                   "WHERE grant_id = %s ORDER BY issued_at, lease_id",
                                   (grant_id,))
        out = [self._lease(r) for r in rows]
        if live_only:
            out = [x for x in out if not x.revoked and (now is None or x.expires_at > now)]
        return out

    async def revoke(self, lease_id: str, reason: str) -> bool:
        n = await self._p.execute("UPDATE leases SET revoked = true, revoked_reason = %s "
                                  "WHERE lease_id = %s AND NOT revoked", (reason, lease_id))
        return n == 1


class PgToolPinStore:
    def __init__(self, pool: Pool) -> None:
        self._p = pool

    async def get(self, tool: str) -> str | None:
        rows = await self._p.fetch("SELECT fingerprint FROM tool_pins WHERE tool = %s", (tool,))
        return rows[0][0] if rows else None

    async def pin(self, tool: str, fingerprint: str) -> None:
        await self._p.execute("INSERT INTO tool_pins (tool, fingerprint) VALUES (%s, %s) "
                              "ON CONFLICT (tool) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
                              (tool, fingerprint))
