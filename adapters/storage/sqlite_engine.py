"""The SQLite engine: writes on the event loop, fsyncs in a helper process, one reader thread.

Group commit in two steps. Every write queued during one turn of the event loop (audit appends,
the rows that travel with them, store jobs) goes into ONE transaction, run on the loop thread
itself: with WAL and synchronous=NORMAL a COMMIT only appends frames to the WAL (tens of
microseconds, no fsync). In `full` mode (the default) the committed round is then made durable
by the sync helper (wal_sync.py: a small process that fdatasyncs the WAL once for every request
it has read, answering through a pipe the loop watches), and only then are the round's callers
answered: SQLite's own synchronous=FULL is exactly NORMAL plus this WAL sync after each commit,
so a record is on stable storage before its caller hears of it, while the loop goes on serving
during the fsync and no thread has to win the GIL back from it.

A failed round rolls back, leaves the chain head untouched and fails every caller in it with
StoreUnavailable. A failed fsync (or a dead helper) fails its callers and the engine for good
(the page cache can no longer be trusted to reach the disk): every later write is refused.
Checkpoints run on a small thread every _CHECKPOINT_ROUNDS rounds. The file is owned by one
gateway process; several replicas need PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from adapters.fsync import fsync_dir
from gateway.audit import GENESIS, Checkpoint, Signer, make_checkpoint, seal
from gateway.clock import Clock
from gateway.ids import new_id
from gateway.ports import WRITE_BEHIND, AuditEvent, AuditRecord, StoreUnavailable
from gateway.timers import Later

from .records import RECORD_COLUMNS, dumps
from .wal_sync import WalSyncer

__all__ = ["SqliteEngine", "SCHEMA_VERSION", "DB_FILE", "connect", "row_to_record",
           "RECORD_COLUMNS"]

DB_FILE = "jitgate.db"
SCHEMA_VERSION = 1
# Checkpoint the WAL into the database every this many committed rounds (a round writes a few
# pages: about SQLite's own auto-checkpoint of 1000 pages); past the hard limit (the sync
# thread's PASSIVE checkpoints kept racing the writer) one is done between rounds.
_CHECKPOINT_ROUNDS = 50
# A write-behind (see gateway.ports.WRITE_BEHIND) is committed with the next round that has a
# caller waiting, or after _BEHIND_FLUSH_S at most; once committed, it is synced with the next
# round that has a caller waiting, or after _BEHIND_SYNC_S at most.
_BEHIND_FLUSH_S = 0.005
_BEHIND_SYNC_S = 0.005
_HELPER_CODE: str | None = None  # tests swap in a helper that holds or fails its syncs
_HARD_LIMIT_ROUNDS = 5000
# A round that finds the checkpoint thread holding the writer off tries again after this long.
_LOCKED_RETRY_S = 0.0002
# The WAL file is trimmed back to this size when it starts over (it grows past it only while
# a checkpoint cannot catch up).
_WAL_SIZE_LIMIT = 16 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
  grant_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, status TEXT NOT NULL,
  version INTEGER NOT NULL, calls_used INTEGER NOT NULL, created_at REAL NOT NULL,
  body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS grants_agent ON grants (agent_id, status);
CREATE TABLE IF NOT EXISTS approvals (
  n INTEGER PRIMARY KEY, approval_id TEXT NOT NULL UNIQUE, agent_id TEXT NOT NULL,
  grant_id TEXT, tool TEXT NOT NULL, args_digest TEXT NOT NULL, status TEXT NOT NULL,
  created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS approvals_call ON approvals (agent_id, tool, args_digest);
CREATE TABLE IF NOT EXISTS agent_keys (
  key_id TEXT PRIMARY KEY, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
  lease_id TEXT PRIMARY KEY, grant_id TEXT, issued_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_grant ON leases (grant_id);
CREATE TABLE IF NOT EXISTS tool_pins (tool TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_records (
  pos INTEGER PRIMARY KEY, seq INTEGER NOT NULL, event_id TEXT NOT NULL, ts REAL NOT NULL,
  type TEXT NOT NULL, actor TEXT NOT NULL, grant_id TEXT, decision_id TEXT,
  data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_seq ON audit_records (seq);
CREATE INDEX IF NOT EXISTS audit_grant ON audit_records (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_decision ON audit_records (decision_id)
  WHERE decision_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  n INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, ts REAL NOT NULL,
  kid TEXT NOT NULL, sig TEXT NOT NULL);
"""


SYNC_MODES = {"full": "FULL", "normal": "NORMAL"}


def connect(path: Path, *, readonly: bool = False, busy_timeout_ms: int = 5000,
            sync: str = "full") -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # full: every commit is fsync'd before anyone is answered (the default);
        # normal: survives a crash of the process, not a power loss (documented trade-off)
        conn.execute(f"PRAGMA synchronous = {SYNC_MODES[sync]}")
    return conn


def row_to_record(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(seq=row[0], event_id=row[1], ts=row[2], type=row[3], actor=row[4],
                       grant_id=row[5], decision_id=row[6], data=json.loads(row[7]),
                       prev_hash=row[8], hash=row[9])


_Deliveries = list[tuple["asyncio.Future[Any]", bool, Any]]


_ROWS_PER_STATEMENT = 200


def insert_many(c: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows with multi-row VALUES statements rather than executemany: executemany
    re-takes the GIL for every row, and under load each re-take can wait a whole switch
    interval behind the event loop thread."""
    if len(rows) == 1:
        c.execute(sql, rows[0])
        return
    head, _, one = sql.rpartition("VALUES")
    one = one.strip()
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        c.execute(f"{head}VALUES {','.join([one] * len(chunk))}",
                  [v for row in chunk for v in row])


def _post(loop: asyncio.AbstractEventLoop, items: _Deliveries) -> None:
    try:
        loop.call_soon_threadsafe(_deliver, items)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
        pass


def _answer(done: Sequence[tuple[Any, tuple[Any, bool, Any]]]) -> None:
    """Resolve (loop, (future, ok, value)) results: directly on the running loop, through
    call_soon_threadsafe for any other."""
    try:
        here: Any = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    by_loop: dict[Any, _Deliveries] = {}
    for loop, delivery in done:
        by_loop.setdefault(loop, []).append(delivery)
    for loop, deliveries in by_loop.items():
        if loop is here:
            _deliver(deliveries)
        else:
            _post(loop, deliveries)


def _deliver(items: _Deliveries) -> None:
    for fut, ok, value in items:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


class SqliteEngine:
    def __init__(self, path: Path, *, clock: Clock, signer: Signer | None = None,
                 checkpoint_every: int = 100, busy_timeout_ms: int = 5000,
                 sync: str = "full") -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"audit sync mode must be one of {sorted(SYNC_MODES)}")
        self.path = path
        self.clock = clock
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.closed = False
        self._failed: str | None = None  # set for good when an fsync failed
        self._busy = busy_timeout_ms
        self._pending: list[tuple[Any, ...]] = []
        self._rounds = 0  # committed rounds since the last completed checkpoint
        self._early: dict[Any, Any] = {}  # caller future -> its durability future
        self._behind: set[Any] = set()  # write-behind callers: answered at commit
        self._flush_on: asyncio.AbstractEventLoop | None = None  # a round is scheduled there
        self._behind_later = Later(self._flush_behind)  # a write-behind waiting alone
        self._write_lock = threading.Lock()
        self._rq: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sq: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.head_seq = 0
        self.head_hash = GENESIS
        # The head as the callers' side sees it: events are sealed when queued; the round checks
        # each batch against the stored head and re-seals on a gap.
        self._tentative: tuple[int, str] = (0, GENESIS)
        self._resync = False
        self._seal_lock = threading.Lock()
        self._data_version: int | None = None  # see changed_elsewhere
        self._commits = 0  # rounds run (committed or not)
        self._checked_after = -1  # rounds run before the last check of other writers
        try:
            # WAL commits without fsync; in full mode the sync helper makes each round durable.
            self._wconn = connect(path, busy_timeout_ms=busy_timeout_ms, sync="normal")
            wal = self._wconn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
            if not wal and sync == "full":  # no WAL here: let SQLite sync every commit itself
                self._wconn.execute("PRAGMA synchronous = FULL")
            if wal and sync == "full":  # checkpoints move to the checkpoint thread
                self._wconn.execute("PRAGMA wal_autocheckpoint = 0")
            self._wconn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
            self._init_schema()
            self._rconn = connect(path, busy_timeout_ms=busy_timeout_ms)
            self._rconn.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            raise StoreUnavailable("cannot open the SQLite store") from exc
        self._sync_wal = wal and sync == "full"
        self._wal_path = f"{path}-wal"
        self._wal: WalSyncer | None = None
        if self._sync_wal:
            fsync_dir(path.parent)  # the WAL file's directory entry, once
            try:
                self._wal = WalSyncer(self._wal_path, self._synced, helper_code=_HELPER_CODE)
            except OSError as exc:
                self._wconn.close()
                self._rconn.close()
                raise StoreUnavailable("cannot start the audit sync helper") from exc
        self._tentative = (self.head_seq, self.head_hash)
        self._ckpt_queued = False
        self._reader = threading.Thread(target=self._run_reader, name="jitgate-sqlite-reader",
                                        daemon=True)
        self._checkpointer = threading.Thread(target=self._run_checkpointer,
                                              name="jitgate-sqlite-checkpoint", daemon=True)
        self._reader.start()
        self._checkpointer.start()

    def _init_schema(self) -> None:
        c = self._wconn
        c.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS)
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise StoreUnavailable(f"database schema {row[0]} is newer than supported")
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        last = c.execute("SELECT seq, hash FROM audit_records ORDER BY pos DESC LIMIT 1").fetchone()
        if last:
            self.head_seq, self.head_hash = last

    # -- the asyncio side -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise StoreUnavailable("the SQLite store is closed")
        if self._failed is not None:
            raise StoreUnavailable(self._failed)

    def _submit_write(self, item: tuple[Any, ...]) -> "asyncio.Future[Any]":
        """Queue a write for this turn's round; the round runs once the loop's current ready
        callbacks (the other requests of this turn) have queued theirs."""
        self._check_open()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((*item, fut, loop))
        if WRITE_BEHIND.get():
            # Nobody waits for it: it rides along with the next round that has a caller
            # waiting, or goes on its own after _BEHIND_FLUSH_S.
            self._behind.add(fut)
            if self._flush_on is not loop:
                self._behind_later.arm(_BEHIND_FLUSH_S)
        elif self._flush_on is not loop:  # none scheduled, or on a loop that has gone away
            self._flush_on = loop
            loop.call_soon(self._flush)
        return fut

    def _flush_behind(self) -> None:
        if self._flush_on is not asyncio.get_running_loop():
            self._flush()

    async def write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn(conn)` in its own savepoint of the next round (on the loop thread: keep it
        to a few statements)."""
        return await self._submit_write(("job", fn))

    async def insert(self, sql: str, params: tuple[Any, ...]) -> None:
        """One row insert, batched with the other inserts of the round into multi-row
        statements."""
        return await self._submit_write(("insert", (sql, params)))

    def changed_elsewhere(self, *, since_own_commit: bool = False) -> bool:
        """True when another connection (another process on this file: `jitgate serve` beside
        `jitgate mcp`, the CLI) committed since the last check. `PRAGMA data_version` on the
        writer connection, on the calling thread: a few microseconds, no hop to the reader.

        With `since_own_commit`, the caller only needs a check made after this process's latest
        commit (to see what others committed before its own write): one already made since
        stands, so the callers of one round share a check."""
        if since_own_commit and self._checked_after == self._commits:
            return False
        version = self.read_now(lambda c: c.execute("PRAGMA data_version").fetchone()[0])
        self._checked_after = self._commits
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    def read_now(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """A short read on the writer connection, on the calling (event loop) thread; it sees
        every committed write, this process's and others'."""
        if self.closed:
            raise StoreUnavailable("the SQLite store is closed")
        try:
            return fn(self._wconn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {type(exc).__name__}") from None

    async def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self.closed:
            raise StoreUnavailable("the SQLite store is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._rq.put(("job", fn, fut, loop))
        return await fut

    async def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        return await self.append_with(events, ())

    async def append_with(self, events: Sequence[AuditEvent],
                          rows: Sequence[tuple[str, tuple[Any, ...]]]) -> list[AuditRecord]:
        """Append audit events and insert `rows` ((sql, params) pairs) atomically, in the same
        round: both are written or neither is (e.g. a decision and the lease it minted)."""
        return await self._queue_audit(events, rows)

    def _queue_audit(self, events: Sequence[AuditEvent],
                     rows: Sequence[tuple[str, tuple[Any, ...]]]) -> "asyncio.Future[Any]":
        self._check_open()
        recs, data = self._preseal(list(events))
        return self._submit_write(("audit", (list(events), list(rows), recs, data)))

    async def append_committed(self, events: Sequence[AuditEvent],
                               rows: Sequence[tuple[str, tuple[Any, ...]]] = ()
                               ) -> tuple[list[AuditRecord], "asyncio.Future[None]"]:
        """Like `append_with`, answered as soon as the round is committed (visible, and safe
        from a crash of this process), with a future that resolves once it is on stable
        storage (or fails if it cannot be): for callers that overlap the fsync with other
        work and wait for it before they answer anyone."""
        fut = self._queue_audit(events, rows)
        self._early[fut] = fut.get_loop().create_future()
        return await fut

    def _preseal(self, events: list[AuditEvent]) -> tuple[list[AuditRecord], list[str]]:
        """Seal after the tentative head; raise ValueError for an event that cannot be hashed
        (nothing is queued then)."""
        with self._seal_lock:
            if self._resync:
                self._tentative, self._resync = (self.head_seq, self.head_hash), False
            s, p = self._tentative
            recs: list[AuditRecord] = []
            try:
                for ev in events:
                    s += 1
                    rec = seal(ev, s, p, ev.ts or self.clock.now(), new_id("evt"))
                    p = rec.hash
                    recs.append(rec)
                data = [dumps(r.data) for r in recs]
            except Exception as exc:
                raise ValueError(f"invalid audit event: {type(exc).__name__}") from None
            self._tentative = (s, p)
            return recs, data

    def _flush(self, block: bool = False) -> None:
        """One round: every queued write in one transaction, then (full mode) off to the sync
        helper; failures are answered at once. While the checkpoint thread holds the writer
        off (catching up with the last few rounds), the round waits a moment on a timer
        instead of blocking the loop."""
        if not self._pending:
            self._flush_on = None
            return
        if not self._write_lock.acquire(blocking=block):
            asyncio.get_running_loop().call_later(_LOCKED_RETRY_S, self._flush)
            return
        self._flush_on = None
        self._behind_later.cancel()  # the write-behinds go in this round
        items, self._pending = self._pending, []
        try:
            done = self._process(items)
        except Exception:  # never leave a caller waiting: fail the whole round closed
            err = StoreUnavailable("the SQLite writer failed")
            done = [(item[3], (item[2], False, err)) for item in items]
        finally:
            self._write_lock.release()
            self._commits += 1
        now: list[tuple[Any, tuple[Any, bool, Any]]] = []  # answered at once
        synced: list[tuple[Any, tuple[Any, bool, Any]]] = []  # answered after the sync
        behind, early = False, 0
        for loop, (fut, good, value) in done:
            durable = self._early.pop(fut, None) if self._early else None
            if fut in self._behind:
                self._behind.discard(fut)
                behind = behind or good
                now.append((loop, (fut, good, value)))
            elif not good:
                now.append((loop, (fut, good, value)))
            elif durable is not None:  # committed now; its durability future follows
                now.append((loop, (fut, True, (value, durable))))
                synced.append((loop, (durable, True, None)))
                early += 1
            else:
                synced.append((loop, (fut, True, value)))
        if not self._sync_wal:
            _answer(now + synced)
            return
        _answer(now)
        self._rounds += 1
        assert self._wal is not None
        if synced and len(synced) == early:
            # Every caller here overlaps the fsync with its own work (`append_committed`): let
            # them start it first, and ask for the sync (a pipe write that wakes the helper, tens
            # of microseconds) on the next turn of the loop.
            asyncio.get_running_loop().call_soon(self._wal.request, synced)
        elif synced:
            self._wal.request(synced)
        elif behind:
            self._wal.request_soon(_BEHIND_SYNC_S)
        if self._rounds >= _CHECKPOINT_ROUNDS and not self._ckpt_queued:
            self._ckpt_queued = True
            self._sq.put(("checkpoint", []))
        if self._rounds > _HARD_LIMIT_ROUNDS:
            self._checkpoint_inline()

    def _synced(self, deliveries: list[tuple[Any, tuple[Any, bool, Any]]],
                error: str | None) -> None:
        """The sync helper answered (on the loop): release the round's callers, or fail them
        and the engine for good."""
        if error is None:
            _answer(deliveries)
            return
        self._failed = error
        err = StoreUnavailable(error)
        _answer([(lp, (fut, False, err)) for lp, (fut, _, _) in deliveries])

    async def close(self) -> None:
        if self.closed:
            return
        if self._pending:
            self._flush(block=True)
        self.closed = True
        if self._wal is not None:
            await self._wal.close()
        loop = asyncio.get_running_loop()
        done_s: asyncio.Future[Any] = loop.create_future()
        done_r: asyncio.Future[Any] = loop.create_future()
        self._sq.put(("stop", [(loop, (done_s, True, None))]))
        self._rq.put(("stop", None, done_r, loop))
        await asyncio.gather(done_s, done_r, return_exceptions=True)
        with self._write_lock:
            self._final_checkpoint()
            self._wconn.close()

    # -- the threads --------------------------------------------------------------------------

    def _run_reader(self) -> None:
        while True:
            kind, fn, fut, loop = self._rq.get()
            if kind == "stop":
                self._rconn.close()
                _post(loop, [(fut, True, None)])
                return
            try:
                res: tuple[Any, bool, Any] = (fut, True, fn(self._rconn))
            except sqlite3.Error as exc:
                res = (fut, False, StoreUnavailable(f"SQLite read failed: {type(exc).__name__}"))
            except Exception as exc:  # a caller's own error (e.g. ConcurrentUpdate)
                res = (fut, False, exc)
            _post(loop, [res])

    def _run_checkpointer(self) -> None:
        """Checkpoint the WAL into the database every _CHECKPOINT_ROUNDS rounds, off the loop."""
        ckpt: sqlite3.Connection | None = None
        while True:
            kind, deliveries = self._sq.get()
            if kind == "checkpoint":
                if self._failed is None:
                    ckpt = self._checkpoint(ckpt)
                self._ckpt_queued = False
                continue
            if ckpt is not None:
                ckpt.close()
            _answer(deliveries)
            return

    def _checkpoint(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """Two PASSIVE checkpoints on the checkpoint thread's own connection. The first copies
        the bulk beside the writer. Under steady load the writer has always appended more by
        the time it ends, so the WAL would never start over and would grow without bound; the
        second copies just those few rounds with the writer held off (`_write_lock`: the loop
        retries its round a moment later), after which the next round restarts the WAL from
        its beginning (and SQLite trims the file to `_WAL_SIZE_LIMIT`)."""
        try:
            if conn is None:
                conn = connect(self.path, busy_timeout_ms=self._busy)
                conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
            busy, _, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy or done < 0:
                return conn  # a reader holds an old snapshot: the next checkpoint tries again
            with self._write_lock:
                busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if not busy and done == frames:
                    self._rounds = 0
        except sqlite3.Error:
            pass  # the next checkpoint tries again; past the hard limit the loop does it inline
        return conn

    def _checkpoint_inline(self) -> None:
        with self._write_lock:
            try:
                self._wconn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self._rounds = 0
            except sqlite3.Error:
                pass

    def _process(self, items: list[tuple[Any, ...]]) -> list[tuple[Any, tuple[Any, bool, Any]]]:
        """One round of group commit: every queued write job, row insert and audit append goes
        into ONE transaction; returns (loop, (future, ok, value)) for each item, to be answered
        once the COMMIT is durable. The round runs first without savepoints; if anything in it
        fails, it is rolled back and run again with one savepoint per job, insert statement and
        append, so that only the callers whose writes failed get the error."""
        try:
            return self._round(items, careful=False)
        except Exception:
            self._rollback()
        try:
            return self._round(items, careful=True)
        except Exception as exc:
            self._rollback()
            self._resync = True
            err = StoreUnavailable(f"SQLite write failed: {type(exc).__name__}")
            return [(item[3], (item[2], False, err)) for item in items]

    def _round(self, items: list[tuple[Any, ...]], *, careful: bool
               ) -> list[tuple[Any, tuple[Any, bool, Any]]]:
        audits = [i for i in items if i[0] == "audit"]
        inserts = [i for i in items if i[0] == "insert"]
        jobs = [i for i in items if i[0] == "job"]
        c = self._wconn
        job_results: list[tuple[Any, tuple[Any, bool, Any]]] = []
        audit_results: list[tuple[Any, bool, Any, Any]] = []
        new_head: tuple[int, str] | None = None
        c.execute("BEGIN IMMEDIATE")
        if inserts:
            job_results.extend(self._insert_rows(inserts, careful))
        for _, fn, fut, loop in jobs:
            if not careful:
                job_results.append((loop, (fut, True, fn(c))))
                continue
            c.execute("SAVEPOINT job")
            try:
                value = fn(c)
                c.execute("RELEASE job")
                job_results.append((loop, (fut, True, value)))
            except Exception as exc:
                c.execute("ROLLBACK TO job")
                c.execute("RELEASE job")
                if isinstance(exc, sqlite3.Error):
                    exc = StoreUnavailable(f"SQLite write failed: {type(exc).__name__}")
                job_results.append((loop, (fut, False, exc)))
        if audits:
            audits, failed = self._attached_rows(audits, careful)
            audit_results.extend(failed)
        if audits:
            sealed, new_head = self._insert_audit(audits)
            audit_results.extend(sealed)
        c.execute("COMMIT")
        if new_head is not None:
            self.head_seq, self.head_hash = new_head
        return job_results + [(loop, (fut, ok, value)) for fut, ok, value, loop in audit_results]

    def _insert_rows(self, inserts: list[tuple[Any, ...]], careful: bool
                     ) -> list[tuple[Any, tuple[Any, bool, Any]]]:
        """One multi-row statement per SQL; carefully, if a batch fails, its rows are retried
        one by one so only the offending row's caller gets the error."""
        c = self._wconn
        by_sql: dict[str, list[tuple[Any, ...]]] = {}
        for item in inserts:
            by_sql.setdefault(item[1][0], []).append(item)
        results: list[tuple[Any, tuple[Any, bool, Any]]] = []
        for sql, group in by_sql.items():
            if not careful:
                insert_many(c, sql, [g[1][1] for g in group])
                results.extend((loop, (fut, True, None)) for _, _, fut, loop in group)
                continue
            c.execute("SAVEPOINT rows")
            try:
                insert_many(c, sql, [g[1][1] for g in group])
                c.execute("RELEASE rows")
                results.extend((loop, (fut, True, None)) for _, _, fut, loop in group)
                continue
            except sqlite3.Error:
                c.execute("ROLLBACK TO rows")
                c.execute("RELEASE rows")
            for _, (_, params), fut, loop in group:
                try:
                    c.execute(sql, params)
                    results.append((loop, (fut, True, None)))
                except sqlite3.IntegrityError as exc:
                    results.append((loop, (fut, False, exc)))
        return results

    def _rollback(self) -> None:
        try:
            if self._wconn.in_transaction:
                self._wconn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _db_head(self) -> tuple[int, str]:
        """The head as stored, read inside the write transaction (safe if another process
        appended in the meantime, e.g. a CLI on the same file)."""
        row = self._wconn.execute("SELECT seq, hash FROM audit_records "
                                  "ORDER BY pos DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def _seal(self, items: list[tuple[Any, ...]], seq: int, prev: str) -> tuple[Any, ...]:
        """Rows for the batch, chained after the stored head (seq, prev). Pre-sealed records
        that follow on are taken as they are; after a gap (another process appended, or an
        earlier round failed) they are sealed again here."""
        rows: list[tuple[Any, ...]] = []
        cps: list[Checkpoint] = []
        pending: list[tuple[Any, list[AuditRecord], Any]] = []
        for _, (events, recs, data), fut, loop in items:
            if recs[0].seq != seq + 1 or recs[0].prev_hash != prev:
                self._resync = True
                s, p, again = seq, prev, []
                for ev, old in zip(events, recs):
                    s += 1
                    rec = seal(ev, s, p, old.ts, old.event_id)
                    p = rec.hash
                    again.append(rec)
                recs = again
            seq, prev = recs[-1].seq, recs[-1].hash
            for r, d in zip(recs, data):
                rows.append((r.seq, r.event_id, r.ts, r.type, r.actor, r.grant_id,
                             r.decision_id, d, r.prev_hash, r.hash))
                if (self.signer is not None and self.checkpoint_every > 0
                        and r.seq % self.checkpoint_every == 0):
                    cps.append(make_checkpoint(self.signer, r.seq, r.hash, self.clock.now()))
            pending.append((fut, recs, loop))
        return rows, cps, pending, [], seq, prev

    def _attached_rows(self, audits: list[tuple[Any, ...]], careful: bool
                       ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, bool, Any, Any]]]:
        """Insert the rows that travel with audit appends (one statement per table when all
        succeed); carefully, an append whose rows fail is refused whole, the others go on."""
        c = self._wconn
        plain = [(k, (p[0], p[2], p[3]), f, lp) for k, p, f, lp in audits]
        with_rows = [a for a in audits if a[1][1]]
        if not with_rows:
            return plain, []
        by_sql: dict[str, list[tuple[Any, ...]]] = {}
        for _, (_, rows, _, _), _, _ in with_rows:
            for sql, params in rows:
                by_sql.setdefault(sql, []).append(params)
        if not careful:
            for sql, params in by_sql.items():
                insert_many(c, sql, params)
            return plain, []
        c.execute("SAVEPOINT attached")
        try:
            for sql, params in by_sql.items():
                insert_many(c, sql, params)
            c.execute("RELEASE attached")
            return plain, []
        except sqlite3.Error:
            c.execute("ROLLBACK TO attached")
            c.execute("RELEASE attached")
        ok: list[tuple[Any, ...]] = []
        failed: list[tuple[Any, bool, Any, Any]] = []
        for kind, (events, rows, recs, data), fut, loop in audits:
            c.execute("SAVEPOINT one")
            try:
                for sql, params in rows:
                    c.execute(sql, params)
                c.execute("RELEASE one")
                ok.append((kind, (events, recs, data), fut, loop))
            except sqlite3.Error as exc:
                c.execute("ROLLBACK TO one")
                c.execute("RELEASE one")
                failed.append((fut, False, exc, loop))
        return ok, failed

    def _insert_audit(self, items: list[tuple[Any, ...]]
                      ) -> tuple[list[tuple[Any, bool, Any, Any]], tuple[int, str]]:
        """Seal and insert queued appends inside the caller's open transaction."""
        c = self._wconn
        rows, cps, pending, rejected, seq, prev = self._seal(items, *self._db_head())
        if rows:
            insert_many(c, f"INSERT INTO audit_records ({RECORD_COLUMNS}) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        if cps:
            c.executemany("INSERT INTO audit_checkpoints (seq, hash, ts, kid, sig) "
                          "VALUES (?,?,?,?,?)",
                          [(x.seq, x.hash, x.ts, x.kid, x.sig) for x in cps])
        return rejected + [(fut, True, recs, loop) for fut, recs, loop in pending], (seq, prev)

    def _final_checkpoint(self) -> None:
        if self.signer is None:
            return
        c = self._wconn
        try:
            c.execute("BEGIN IMMEDIATE")
            seq, h = self._db_head()
            last = c.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0] or 0
            if seq and seq != last:
                cp = make_checkpoint(self.signer, seq, h, self.clock.now())
                c.execute("INSERT INTO audit_checkpoints (seq, hash, ts, kid, sig) "
                          "VALUES (?,?,?,?,?)", (cp.seq, cp.hash, cp.ts, cp.kid, cp.sig))
            c.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
