"""Every store over PostgreSQL (psycopg 3 async + AsyncConnectionPool), in one schema.

Safe for several gateway replicas: grants use CAS on `version` (no in-process cache), and the
audit chain head is one row locked with `SELECT ... FOR UPDATE` inside each append transaction,
so replicas append to one chain in turn. Within a process, appends are group-committed by one
writer task: everything queued while a transaction runs goes into the next one.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import (GENESIS, Checkpoint, Signer, VerifyReport, make_checkpoint, seal,
                           verify_chain)
from gateway.clock import Clock, SystemClock
from gateway.ids import new_id
from gateway.ports import AuditEvent, AuditRecord, StoreUnavailable

from .postgres_stores import (PgApprovalStore, PgGrantStore, PgKeyStore, PgLeaseStore,
                              PgToolPinStore, Pool)

from .records import RECORD_COLUMNS

__all__ = ["PostgresAuditLog", "PostgresStores", "open_postgres", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
_COLS = RECORD_COLUMNS
_MAX_BATCH = 4096

_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
  grant_id text PRIMARY KEY, agent_id text NOT NULL, status text NOT NULL,
  version bigint NOT NULL, calls_used bigint NOT NULL, created_at double precision NOT NULL,
  body text NOT NULL);
CREATE INDEX IF NOT EXISTS grants_agent ON grants (agent_id, status);
CREATE TABLE IF NOT EXISTS approvals (
  n bigserial PRIMARY KEY, approval_id text NOT NULL UNIQUE, agent_id text NOT NULL,
  grant_id text, tool text NOT NULL, args_digest text NOT NULL, status text NOT NULL,
  approver text NOT NULL DEFAULT '', created_at double precision NOT NULL, body text NOT NULL);
CREATE INDEX IF NOT EXISTS approvals_call ON approvals (agent_id, tool, args_digest);
CREATE TABLE IF NOT EXISTS agent_keys (
  key_id text PRIMARY KEY, created_at double precision NOT NULL,
  disabled boolean NOT NULL DEFAULT false, body text NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
  lease_id text PRIMARY KEY, grant_id text, issued_at double precision NOT NULL,
  revoked boolean NOT NULL DEFAULT false, revoked_reason text NOT NULL DEFAULT '',
  body text NOT NULL);
CREATE INDEX IF NOT EXISTS leases_grant ON leases (grant_id);
CREATE TABLE IF NOT EXISTS tool_pins (tool text PRIMARY KEY, fingerprint text NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
  id integer PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash text NOT NULL,
  last_checkpoint bigint NOT NULL DEFAULT 0);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '%s') ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS audit_records (
  pos bigserial PRIMARY KEY, seq bigint NOT NULL, event_id text NOT NULL,
  ts double precision NOT NULL, type text NOT NULL, actor text NOT NULL, grant_id text,
  decision_id text, data text NOT NULL, prev_hash text NOT NULL, hash text NOT NULL);
CREATE INDEX IF NOT EXISTS audit_seq ON audit_records (seq);
CREATE INDEX IF NOT EXISTS audit_grant ON audit_records (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_decision ON audit_records (decision_id)
  WHERE decision_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  n bigserial PRIMARY KEY, seq bigint NOT NULL, hash text NOT NULL,
  ts double precision NOT NULL, kid text NOT NULL, sig text NOT NULL);
""" % GENESIS

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _rec(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(seq=row[0], event_id=row[1], ts=row[2], type=row[3], actor=row[4],
                       grant_id=row[5], decision_id=row[6], data=json.loads(row[7]),
                       prev_hash=row[8], hash=row[9])


class PostgresAuditLog:
    def __init__(self, pool: Pool, *, clock: Clock, signer: Signer | None,
                 checkpoint_every: int) -> None:
        self._pool = pool
        self.clock = clock
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.closed = False
        self._q: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def append(self, event: AuditEvent) -> AuditRecord:
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if self.closed:
            raise StoreUnavailable("the PostgreSQL store is closed")
        if not events:
            return []
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run_writer())
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._q.put_nowait((list(events), fut))
        return await fut

    async def _run_writer(self) -> None:
        while True:
            items = [await self._q.get()]
            while len(items) < _MAX_BATCH and not self._q.empty():
                items.append(self._q.get_nowait())
            stop = any(ev is None for ev, _ in items)
            items = [(ev, fut) for ev, fut in items if ev is not None]
            if items:
                try:
                    await self._commit(items)
                except Exception as exc:  # the batch failed as a whole: nobody gets a record
                    err = StoreUnavailable(f"audit append failed: {type(exc).__name__}")
                    for _, fut in items:
                        if not fut.done():
                            fut.set_exception(err)
            if stop:
                return

    async def _commit(self, items: list[tuple[list[AuditEvent], asyncio.Future[Any]]]) -> None:
        async with self._pool.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT seq, hash, last_checkpoint FROM audit_head WHERE id = 1 FOR UPDATE")
                seq, prev, last_cp = await cur.fetchone()  # type: ignore[misc]
                rows: list[tuple[Any, ...]] = []
                cps: list[Checkpoint] = []
                done: list[tuple[asyncio.Future[Any], Any]] = []
                for events, fut in items:
                    try:
                        recs, s, p = [], seq, prev
                        for ev in events:
                            s += 1
                            rec = seal(ev, s, p, ev.ts or self.clock.now(), new_id("evt"))
                            p = rec.hash
                            recs.append(rec)
                        data = [json.dumps(r.data, separators=(",", ":"), ensure_ascii=False)
                                for r in recs]
                    except Exception as exc:
                        if not fut.done():
                            fut.set_exception(ValueError(f"invalid audit event: {exc}"))
                        continue
                    seq, prev = s, p
                    for r, d in zip(recs, data):
                        rows.append((r.seq, r.event_id, r.ts, r.type, r.actor, r.grant_id,
                                     r.decision_id, d, r.prev_hash, r.hash))
                        if (self.signer is not None and self.checkpoint_every > 0
                                and r.seq % self.checkpoint_every == 0):
                            cps.append(make_checkpoint(self.signer, r.seq, r.hash,
                                                       self.clock.now()))
                    done.append((fut, recs))
                if not rows:
                    return
                async with conn.cursor() as c:
                    if len(rows) <= 4:
                        await c.executemany(f"INSERT INTO audit_records ({_COLS}) VALUES "
                                            "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
                    else:  # COPY is faster for a large batch
                        async with c.copy(f"COPY audit_records ({_COLS}) FROM STDIN") as cp:
                            for row in rows:
                                await cp.write_row(row)
                    if cps:
                        await c.executemany("INSERT INTO audit_checkpoints (seq, hash, ts, kid, "
                                            "sig) VALUES (%s,%s,%s,%s,%s)",
                                            [(x.seq, x.hash, x.ts, x.kid, x.sig) for x in cps])
                        last_cp = cps[-1].seq
                    await c.execute("UPDATE audit_head SET seq = %s, hash = %s, "
                                    "last_checkpoint = %s WHERE id = 1", (seq, prev, last_cp))
        for fut, recs in done:  # only now: the transaction committed
            if not fut.done():
                fut.set_result(recs)

    async def read(self, after_seq: int = 0, limit: int = 1000, grant_id: str | None = None,
                   decision_id: str | None = None) -> list[AuditRecord]:
        where, args = ["seq > %s"], [after_seq]
        if grant_id is not None:
            where.append("grant_id = %s")
            args.append(grant_id)
        if decision_id is not None:
            where.append("decision_id = %s")
            args.append(decision_id)
        rows = await self._pool.fetch(f"SELECT {_COLS} FROM audit_records WHERE "
                                      f"{' AND '.join(where)} ORDER BY seq, pos LIMIT %s",
                                      (*args, limit))
        return [_rec(r) for r in rows]

    async def read_physical(self) -> list[AuditRecord]:
        """Every record in stored order (for verify_chain)."""
        return [_rec(r) for r in
                await self._pool.fetch(f"SELECT {_COLS} FROM audit_records ORDER BY pos")]

    async def verify(self, public_keys: Mapping[str, Ed25519PublicKey] | None = None
                     ) -> VerifyReport:
        """verify_chain over the whole table (keys default to the signer's own)."""
        get = getattr(self.signer, "public_keys", None)
        keys = public_keys if public_keys is not None else (get() if callable(get) else {})
        every = self.checkpoint_every if self.signer is not None else None
        return verify_chain(await self.read_physical(), await self.read_checkpoints(), keys,
                            checkpoint_every=every or None)

    async def head(self) -> tuple[int, str]:
        rows = await self._pool.fetch("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (rows[0][0], rows[0][1]) if rows else (0, GENESIS)

    async def read_checkpoints(self) -> list[Checkpoint]:
        rows = await self._pool.fetch("SELECT seq, hash, ts, kid, sig FROM audit_checkpoints "
                                      "ORDER BY n")
        return [Checkpoint(seq=r[0], hash=r[1], ts=r[2], kid=r[3], sig=r[4]) for r in rows]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._writer is not None and not self._writer.done():
            self._q.put_nowait((None, None))  # type: ignore[arg-type]  # stop after the queue
            await asyncio.gather(self._writer, return_exceptions=True)
        if self.signer is None:
            return
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute("SELECT seq, hash, last_checkpoint FROM audit_head "
                                         "WHERE id = 1 FOR UPDATE")
                seq, h, last = await cur.fetchone()  # type: ignore[misc]
                if seq and seq != last:
                    cp = make_checkpoint(self.signer, seq, h, self.clock.now())
                    await conn.execute("INSERT INTO audit_checkpoints (seq, hash, ts, kid, sig) "
                                       "VALUES (%s,%s,%s,%s,%s)",
                                       (cp.seq, cp.hash, cp.ts, cp.kid, cp.sig))
                    await conn.execute("UPDATE audit_head SET last_checkpoint = %s WHERE id = 1",
                                       (seq,))
        except (psycopg.Error, PoolTimeout):
            pass


@dataclass
class PostgresStores:
    grants: PgGrantStore
    approvals: PgApprovalStore
    keys: PgKeyStore
    audit: PostgresAuditLog
    leases: PgLeaseStore
    pins: PgToolPinStore
    pool: Pool
    schema: str

    async def checkpoints(self) -> list[Checkpoint]:
        return await self.audit.read_checkpoints()

    async def close(self) -> None:
        await self.audit.close()
        await self.pool.close()


async def open_postgres(dsn: str, schema: str = "jitgate", signer: Signer | None = None,
                        checkpoint_every: int = 100, clock: Clock | None = None,
                        min_size: int = 1, max_size: int = 10,
                        timeout_s: float = 5.0) -> PostgresStores:
    """Open a pool on `dsn`, create `schema` and its tables if needed."""
    if not _SCHEMA_RE.match(schema):
        raise ValueError("schema must be a lower-case SQL identifier")
    raw = AsyncConnectionPool(dsn, min_size=min_size, max_size=max_size, open=False,
                              timeout=timeout_s,
                              kwargs={"options": f"-c search_path={schema}", "autocommit": True})
    try:
        await raw.open(wait=True, timeout=timeout_s)
        async with raw.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                               (f"jitgate-schema-{schema}",))
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(_DDL)
            cur = await conn.execute("SELECT version FROM schema_version")
            row = await cur.fetchone()
            if row is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)",
                                   (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise StoreUnavailable(f"database schema {row[0]} is newer than supported")
    except (psycopg.Error, PoolTimeout, OSError) as exc:
        await raw.close()
        raise StoreUnavailable("cannot open the PostgreSQL store") from exc
    pool = Pool(raw)
    return PostgresStores(grants=PgGrantStore(pool), approvals=PgApprovalStore(pool),
                          keys=PgKeyStore(pool), leases=PgLeaseStore(pool),
                          pins=PgToolPinStore(pool), pool=pool, schema=schema,
                          audit=PostgresAuditLog(pool, clock=clock or SystemClock(),
                                                 signer=signer,
                                                 checkpoint_every=checkpoint_every))
