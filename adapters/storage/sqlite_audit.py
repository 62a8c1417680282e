"""The SQLite audit log and the synchronous readers the CLI uses without a running gateway."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, Awaitable, Iterator, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import GENESIS, Checkpoint, Signer, VerifyReport, verify_chain
from gateway.model import Lease
from gateway.ports import AuditEvent, AuditRecord, ConcurrentUpdate, StoreUnavailable

from .records import lease_insert
from .signer import load_public_keys
from .sqlite_engine import DB_FILE, RECORD_COLUMNS, SqliteEngine, connect, row_to_record

__all__ = [
    "SqliteAuditLog",
    "read_sqlite_audit",
    "read_sqlite_checkpoints",
    "iter_sqlite_audit",
    "verify_sqlite",
]


def _read_records(c: sqlite3.Connection, after_seq: int = 0, limit: int | None = None,
                  grant_id: str | None = None, decision_id: str | None = None,
                  physical: bool = False) -> list[AuditRecord]:
    where: list[str] = [] if physical else ["seq > ?"]
    args: list[Any] = [] if physical else [after_seq]
    if grant_id is not None:
        where.append("grant_id = ?")
        args.append(grant_id)
    if decision_id is not None:
        where.append("decision_id = ?")
        args.append(decision_id)
    cond = f"WHERE {' AND '.join(where)} " if where else ""
    sql = (f"SELECT {RECORD_COLUMNS} FROM audit_records {cond}"
           f"ORDER BY {'pos' if physical else 'seq, pos'} LIMIT ?")
    return [row_to_record(r) for r in c.execute(sql, (*args, -1 if limit is None else limit))]


def _read_checkpoints(c: sqlite3.Connection) -> list[Checkpoint]:
    rows = c.execute("SELECT seq, hash, ts, kid, sig FROM audit_checkpoints ORDER BY n")
    return [Checkpoint(seq=r[0], hash=r[1], ts=r[2], kid=r[3], sig=r[4]) for r in rows]


def _signer_keys(signer: Signer | None) -> Mapping[str, Ed25519PublicKey]:
    get = getattr(signer, "public_keys", None)
    return get() if callable(get) else {}


class SqliteAuditLog:
    """Group-committed hash chain (see sqlite_engine)."""

    def __init__(self, engine: SqliteEngine) -> None:
        self._e = engine

    async def append(self, event: AuditEvent) -> AuditRecord:
        return (await self._e.append((event,)))[0]

    async def append_with_lease(self, event: AuditEvent, lease: Lease) -> AuditRecord:
        """The decision and the lease it minted, in one transaction of the same round."""
        try:
            return (await self._e.append_with((event,), [lease_insert(lease)]))[0]
        except sqlite3.IntegrityError as exc:
            raise ConcurrentUpdate(f"lease {lease.lease_id} already exists") from exc

    async def append_with_lease_committed(self, event: AuditEvent, lease: Lease | None
                                          ) -> tuple[AuditRecord, Awaitable[None]]:
        """The decision (and its lease) committed now, with an awaitable for the moment it is
        on stable storage: a proxy forwards the call meanwhile and waits for it before it lets
        the caller see the result."""
        rows = [lease_insert(lease)] if lease is not None else []
        try:
            records, durable = await self._e.append_committed((event,), rows)
        except sqlite3.IntegrityError as exc:
            raise ConcurrentUpdate(f"lease {lease.lease_id if lease else ''} already exists") from exc
        return records[0], durable

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if not events:
            return []
        return await self._e.append(events)

    async def read(self, after_seq: int = 0, limit: int = 1000, grant_id: str | None = None,
                   decision_id: str | None = None) -> list[AuditRecord]:
        return await self._e.read(lambda c: _read_records(c, after_seq, limit, grant_id,
                                                          decision_id))

    async def head(self) -> tuple[int, str]:
        def fn(c: sqlite3.Connection) -> tuple[int, str]:
            row = c.execute("SELECT seq, hash FROM audit_records ORDER BY pos DESC LIMIT 1"
                            ).fetchone()
            return (row[0], row[1]) if row else (0, GENESIS)
        return await self._e.read(fn)

    async def read_checkpoints(self) -> list[Checkpoint]:
        return await self._e.read(_read_checkpoints)

    async def verify(self, public_keys: Mapping[str, Ed25519PublicKey] | None = None
                     ) -> VerifyReport:
        keys = public_keys if public_keys is not None else _signer_keys(self._e.signer)
        if not keys:
            keys = load_public_keys(self._e.path.parent)

        every = self._e.checkpoint_every if self._e.signer is not None else None

        def fn(c: sqlite3.Connection) -> VerifyReport:
            return verify_chain(_read_records(c, physical=True), _read_checkpoints(c), keys,
                                checkpoint_every=every or None)
        return await self._e.read(fn)

    async def close(self) -> None:
        await self._e.close()


def _open_ro(data_dir: str | os.PathLike[str]) -> sqlite3.Connection:
    path = Path(data_dir) / DB_FILE
    if not path.exists():
        raise StoreUnavailable(f"no audit database in {data_dir}")
    try:
        return connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise StoreUnavailable("cannot open the audit database") from exc


def read_sqlite_audit(data_dir: str | os.PathLike[str], after_seq: int = 0,
                      limit: int | None = None, grant_id: str | None = None,
                      decision_id: str | None = None) -> list[AuditRecord]:
    """Records after `after_seq` in seq order, read synchronously (CLI tail/export)."""
    c = _open_ro(data_dir)
    try:
        return _read_records(c, after_seq, limit, grant_id, decision_id)
    finally:
        c.close()


def read_sqlite_checkpoints(data_dir: str | os.PathLike[str]) -> list[Checkpoint]:
    c = _open_ro(data_dir)
    try:
        return _read_checkpoints(c)
    finally:
        c.close()


def iter_sqlite_audit(data_dir: str | os.PathLike[str], after_seq: int = 0,
                      page: int = 5000) -> Iterator[AuditRecord]:
    """Stream every record after `after_seq` (export of large logs)."""
    while True:
        batch = read_sqlite_audit(data_dir, after_seq=after_seq, limit=page)
        yield from batch
        if len(batch) < page:
            return
        after_seq = batch[-1].seq


def verify_sqlite(data_dir: str | os.PathLike[str],
                  public_keys: Mapping[str, Ed25519PublicKey] | None = None,
                  checkpoint_every: int | None = None) -> VerifyReport:
    """Verify the chain in `<data_dir>/jitgate.db` offline, in stored order.

    Without `public_keys`, the checkpoint key is taken from the signer file in the data dir.
    With the gateway's `checkpoint_every`, a checkpoint missing at a multiple of it is reported.
    """
    keys = public_keys if public_keys is not None else load_public_keys(data_dir)
    c = _open_ro(data_dir)
    try:
        return verify_chain(_read_records(c, physical=True), _read_checkpoints(c), keys,
                            checkpoint_every=checkpoint_every or None)
    finally:
        c.close()
