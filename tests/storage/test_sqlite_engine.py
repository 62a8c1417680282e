"""The SQLite engine's two-step group commit: rounds commit on the loop, the sync thread makes
them durable, and nobody is answered before that; a failed sync fails the engine for good."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import adapters.storage.sqlite_engine as engine_mod
from adapters.storage.sqlite import open_sqlite
from gateway.clock import FakeClock
from gateway.ports import WRITE_BEHIND, AuditEvent, StoreUnavailable


def _ev(i: int, pad: int = 0) -> AuditEvent:
    return AuditEvent(type="call.decided", actor="agent_a", data={"i": i, "pad": "x" * pad},
                      decision_id=f"dec_{i}")


async def test_callers_wait_for_the_wal_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gate = threading.Event()
    synced: list[str] = []
    real = engine_mod._datasync

    def held(path: str) -> None:
        gate.wait(10)
        synced.append(path)
        real(path)

    monkeypatch.setattr(engine_mod, "_datasync", held)
    stores = open_sqlite(tmp_path, clock=FakeClock())
    try:
        pending = [asyncio.ensure_future(stores.audit.append(_ev(i))) for i in range(3)]
        for _ in range(20):
            await asyncio.sleep(0)
        # committed (another connection sees the rows) but not yet durable: nobody answered
        other = sqlite3.connect(tmp_path / "jitgate.db")
        try:
            assert other.execute("SELECT count(*) FROM audit_records").fetchone()[0] == 3
        finally:
            other.close()
        assert not any(p.done() for p in pending)
        gate.set()
        records = await asyncio.gather(*pending)
        assert [r.seq for r in records] == [1, 2, 3]
        assert synced and all(p.endswith("jitgate.db-wal") for p in synced)
    finally:
        gate.set()
        await stores.close()


async def test_a_failed_sync_fails_the_round_and_every_later_write(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    stores = open_sqlite(tmp_path, clock=FakeClock())
    try:
        first = await stores.audit.append(_ev(1))

        def broken(path: str) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(engine_mod, "_datasync", broken)
        with pytest.raises(StoreUnavailable):
            await stores.audit.append(_ev(2))
        monkeypatch.undo()  # the disk "works" again: the engine still refuses (fsync errors
        with pytest.raises(StoreUnavailable, match="durable"):  # are reported only once)
            await stores.audit.append(_ev(3))
        with pytest.raises(StoreUnavailable):
            await stores.keys.disable("nobody")
        assert (await stores.audit.read())[0].hash == first.hash  # reads still answer
    finally:
        await stores.close()


async def test_normal_mode_answers_without_the_sync_thread(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    def never(path: str) -> None:
        raise AssertionError("normal mode must not fsync each round")

    monkeypatch.setattr(engine_mod, "_datasync", never)
    stores = open_sqlite(tmp_path, clock=FakeClock(), sync="normal")
    try:
        records = await asyncio.gather(*[stores.audit.append(_ev(i)) for i in range(20)])
        assert sorted(r.seq for r in records) == list(range(1, 21))
        assert (await stores.audit.verify()).ok
    finally:
        await stores.close()


async def test_the_sync_thread_checkpoints_the_wal_into_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(engine_mod, "_CHECKPOINT_ROUNDS", 5)
    stores = open_sqlite(tmp_path, clock=FakeClock())
    db = tmp_path / "jitgate.db"
    try:
        before = os.stat(db).st_size
        for burst in range(20):
            await asyncio.gather(*[stores.audit.append(_ev(burst * 20 + i, pad=400))
                                   for i in range(20)])
        await stores.audit.append(_ev(10_000))  # one more round after the sync thread's turn
        for _ in range(50):  # the sync thread checkpoints after its sync: let it finish
            if os.stat(db).st_size > before + 100 * 1024:
                break
            await asyncio.sleep(0.02)
        assert os.stat(db).st_size > before + 100 * 1024  # rows reached the database file
        assert (await stores.audit.verify()).count == 401
    finally:
        await stores.close()


async def test_committed_append_answers_before_the_sync_and_reports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gate = threading.Event()
    real = engine_mod._datasync
    fail = {"now": False}

    def held(path: str) -> None:
        gate.wait(10)
        if fail["now"]:
            raise OSError(5, "Input/output error")
        real(path)

    monkeypatch.setattr(engine_mod, "_datasync", held)
    stores = open_sqlite(tmp_path, clock=FakeClock())
    try:
        record, durable = await stores.audit.append_with_lease_committed(_ev(1), None)
        assert record.seq == 1 and not durable.done()  # answered while the sync is held
        gate.set()
        await durable
        gate.clear()
        fail["now"] = True
        _, durable = await stores.audit.append_with_lease_committed(_ev(2), None)
        gate.set()
        with pytest.raises(StoreUnavailable):
            await durable
        with pytest.raises(StoreUnavailable):
            await stores.audit.append_with_lease_committed(_ev(3), None)
    finally:
        gate.set()
        await stores.close()


async def test_write_behind_is_answered_at_commit_and_synced_soon_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gate = threading.Event()
    synced = threading.Event()
    real = engine_mod._datasync

    def held(path: str) -> None:
        gate.wait(10)
        real(path)
        synced.set()

    monkeypatch.setattr(engine_mod, "_datasync", held)
    stores = open_sqlite(tmp_path, clock=FakeClock())

    async def behind() -> Any:
        WRITE_BEHIND.set(True)  # as Outcomes does for the records written after the answer
        return await stores.audit.append(_ev(1))

    try:
        record = await asyncio.ensure_future(behind())  # answered while the sync is held
        assert record.seq == 1 and not synced.is_set()
        gate.set()
        assert await asyncio.to_thread(synced.wait, 5)  # and made durable without a caller
        waiting = await stores.audit.append(_ev(2))  # an ordinary write still waits for its sync
        assert waiting.seq == 2
    finally:
        gate.set()
        await stores.close()
