"""The SQLite engine's two-step group commit: rounds commit on the loop, the sync helper makes
them durable, and nobody is answered before that; a failed sync fails the engine for good."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import adapters.storage.sqlite_engine as engine_mod
from adapters.storage.sqlite import open_sqlite
from gateway.clock import FakeClock
from gateway.ports import WRITE_BEHIND, AuditEvent, StoreUnavailable
from tests.support.wal_faults import install_wal_faults


def _ev(i: int, pad: int = 0) -> AuditEvent:
    return AuditEvent(type="call.decided", actor="agent_a", data={"i": i, "pad": "x" * pad},
                      decision_id=f"dec_{i}")


async def _until(check: Any, tries: int = 500) -> bool:
    """Let the loop run (the helper answers through it) until `check()` holds."""
    for _ in range(tries):
        if check():
            return True
        await asyncio.sleep(0.005)
    return bool(check())


async def test_callers_wait_for_the_wal_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    faults = install_wal_faults(monkeypatch, tmp_path / "jitgate.db")
    stores = open_sqlite(tmp_path, clock=FakeClock())
    try:
        faults.hold()
        pending = [asyncio.ensure_future(stores.audit.append(_ev(i))) for i in range(3)]
        for _ in range(20):
            await asyncio.sleep(0.005)
        # committed (another connection sees the rows) but not yet durable: nobody answered
        other = sqlite3.connect(tmp_path / "jitgate.db")
        try:
            assert other.execute("SELECT count(*) FROM audit_records").fetchone()[0] == 3
        finally:
            other.close()
        assert not any(p.done() for p in pending) and faults.synced() == 0
        faults.hold(False)
        records = await asyncio.gather(*pending)
        assert [r.seq for r in records] == [1, 2, 3] and faults.synced() >= 1
    finally:
        faults.hold(False)
        await stores.close()


async def test_a_failed_sync_fails_the_round_and_every_later_write(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    faults = install_wal_faults(monkeypatch, tmp_path / "jitgate.db")
    stores = open_sqlite(tmp_path, clock=FakeClock())
    try:
        first = await stores.audit.append(_ev(1))
        faults.fail()
        with pytest.raises(StoreUnavailable):
            await stores.audit.append(_ev(2))
        faults.fail(False)  # the disk "works" again: the engine still refuses (fsync errors
        with pytest.raises(StoreUnavailable, match="durable"):  # are reported only once)
            await stores.audit.append(_ev(3))
        with pytest.raises(StoreUnavailable):
            await stores.keys.disable("nobody")
        assert (await stores.audit.read())[0].hash == first.hash  # reads still answer
    finally:
        await stores.close()


async def test_normal_mode_has_no_sync_helper(tmp_path: Path):
    stores = open_sqlite(tmp_path, clock=FakeClock(), sync="normal")
    try:
        assert stores.engine._wal is None
        records = await asyncio.gather(*[stores.audit.append(_ev(i)) for i in range(20)])
        assert sorted(r.seq for r in records) == list(range(1, 21))
        assert (await stores.audit.verify()).ok
    finally:
        await stores.close()


async def test_the_wal_is_checkpointed_into_the_database(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(engine_mod, "_CHECKPOINT_ROUNDS", 5)
    stores = open_sqlite(tmp_path, clock=FakeClock())
    db = tmp_path / "jitgate.db"
    try:
        before = os.stat(db).st_size
        for burst in range(20):
            await asyncio.gather(*[stores.audit.append(_ev(burst * 20 + i, pad=400))
                                   for i in range(20)])
        await stores.audit.append(_ev(10_000))
        assert await _until(lambda: os.stat(db).st_size > before + 100 * 1024)
        assert (await stores.audit.verify()).count == 401
    finally:
        await stores.close()


async def test_the_wal_starts_over_under_steady_load(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    """Round after round with no idle moment: the checkpoint must still catch up with the
    writer, or the WAL grows without bound (it did: 15 KB a round, 94 MB after 6,000)."""
    monkeypatch.setattr(engine_mod, "_CHECKPOINT_ROUNDS", 5)
    stores = open_sqlite(tmp_path, clock=FakeClock())
    wal = tmp_path / "jitgate.db-wal"
    try:
        for i in range(600):  # each append is its own round: about 12 MB of WAL frames in all
            await stores.audit.append(_ev(i, pad=3000))
        assert os.stat(wal).st_size < 3 * 1024 * 1024
        assert (await stores.audit.verify()).count == 600
    finally:
        await stores.close()


async def test_committed_append_answers_before_the_sync_and_reports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    faults = install_wal_faults(monkeypatch, tmp_path / "jitgate.db")
    stores = open_sqlite(tmp_path, clock=FakeClock())
    try:
        faults.hold()
        record, durable = await stores.audit.append_with_lease_committed(_ev(1), None)
        assert record.seq == 1 and not durable.done()  # answered while the sync is held
        faults.hold(False)
        await durable
        faults.hold()
        faults.fail()
        _, durable = await stores.audit.append_with_lease_committed(_ev(2), None)
        faults.hold(False)
        with pytest.raises(StoreUnavailable):
            await durable
        with pytest.raises(StoreUnavailable):
            await stores.audit.append_with_lease_committed(_ev(3), None)
    finally:
        faults.hold(False)
        faults.fail(False)
        await stores.close()


async def test_write_behind_is_answered_at_commit_and_synced_soon_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    faults = install_wal_faults(monkeypatch, tmp_path / "jitgate.db")
    stores = open_sqlite(tmp_path, clock=FakeClock())

    async def behind() -> Any:
        WRITE_BEHIND.set(True)  # as Outcomes does for the records written after the answer
        return await stores.audit.append(_ev(1))

    try:
        faults.hold()
        record = await asyncio.ensure_future(behind())  # answered while syncs are held
        assert record.seq == 1 and faults.synced() == 0
        faults.hold(False)
        assert await _until(lambda: faults.synced() == 1)  # made durable without a caller
        waiting = await stores.audit.append(_ev(2))  # an ordinary write waits for its sync
        assert waiting.seq == 2 and faults.synced() == 2
    finally:
        faults.hold(False)
        await stores.close()


async def test_a_write_behind_rides_along_with_the_next_round_that_has_a_caller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(engine_mod, "_BEHIND_FLUSH_S", 3600)  # its own timer stays out of it
    stores = open_sqlite(tmp_path, clock=FakeClock())

    async def behind() -> Any:
        WRITE_BEHIND.set(True)
        return await stores.audit.append(_ev(1))

    try:
        later = asyncio.ensure_future(behind())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not later.done() and stores.engine.head_seq == 0  # nothing committed alone
        waiting = await stores.audit.append(_ev(2))
        assert later.done() and (await later).seq == 1 and waiting.seq == 2
        assert stores.engine._rounds == 1  # one transaction, one sync for both
    finally:
        await stores.close()


async def test_a_dead_sync_helper_fails_closed(tmp_path: Path):
    stores = open_sqlite(tmp_path, clock=FakeClock())
    try:
        await stores.audit.append(_ev(1))
        stores.engine._wal._proc.kill()
        stores.engine._wal._proc.wait()
        with pytest.raises(StoreUnavailable):
            await stores.audit.append(_ev(2))
        with pytest.raises(StoreUnavailable):
            await stores.audit.append(_ev(3))
    finally:
        await stores.close()


def test_writes_queued_on_a_loop_that_went_away_do_not_block_the_next_loop(tmp_path: Path):
    stores = open_sqlite(tmp_path, clock=FakeClock())

    async def abandon() -> None:  # the loop ends before its round could run
        asyncio.ensure_future(stores.audit.append(_ev(1)))

    async def later() -> int:
        record = await asyncio.wait_for(stores.audit.append(_ev(2)), 10)
        await stores.close()
        return record.seq

    asyncio.run(abandon())
    assert asyncio.run(later()) in (1, 2)
