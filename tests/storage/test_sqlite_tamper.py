"""`verify_sqlite` names every kind of tampering done to the file with the sqlite3 module."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from adapters.storage.signer import Ed25519FileSigner
from adapters.storage.sqlite import (iter_sqlite_audit, open_sqlite, read_sqlite_audit,
                                     read_sqlite_checkpoints, verify_sqlite)
from gateway.audit import seal
from gateway.clock import FakeClock
from gateway.ports import AuditEvent, StoreUnavailable

COLS = "seq, event_id, ts, type, actor, grant_id, decision_id, data, prev_hash, hash"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """12 records, checkpoints at 5, 10 and (on close) 12."""

    async def fill() -> None:
        stores = open_sqlite(tmp_path, signer=Ed25519FileSigner(tmp_path), checkpoint_every=5,
                             clock=FakeClock())
        for i in range(1, 13):
            await stores.audit.append(AuditEvent(type="call.decided", actor="agent_a",
                                                 data={"i": i}, grant_id="gr_1",
                                                 decision_id=f"dec_{i}"))
        await stores.close()

    asyncio.run(fill())
    return tmp_path


def _db(d: Path) -> sqlite3.Connection:
    return sqlite3.connect(d / "jitgate.db", isolation_level=None)


def _problems(d: Path) -> list[tuple[int, str]]:
    report = verify_sqlite(d)
    assert not report.ok
    return [(p.seq, p.code) for p in report.problems]


def test_intact_file_verifies(data_dir):
    report = verify_sqlite(data_dir)
    assert report.ok and report.count == 12 and report.head_seq == 12
    assert [c.seq for c in read_sqlite_checkpoints(data_dir)] == [5, 10, 12]
    assert [r.seq for r in read_sqlite_audit(data_dir, after_seq=9, limit=2)] == [10, 11]
    assert [r.seq for r in read_sqlite_audit(data_dir, decision_id="dec_3")] == [3]
    assert [r.seq for r in iter_sqlite_audit(data_dir, after_seq=2, page=4)] == list(range(3, 13))


def test_edited_data_is_modified(data_dir):
    with _db(data_dir) as c:
        c.execute("UPDATE audit_records SET data = ? WHERE seq = 7", (json.dumps({"i": 700}),))
    assert _problems(data_dir) == [(7, "modified")]


def test_deleted_row_is_named(data_dir):
    with _db(data_dir) as c:
        c.execute("DELETE FROM audit_records WHERE seq IN (7, 8)")
    report = verify_sqlite(data_dir)
    assert [(p.seq, p.code) for p in report.problems] == [(7, "deleted")]
    assert "7..8" in report.problems[0].message


def test_forged_row_is_inserted(data_dir):
    genuine = read_sqlite_audit(data_dir)
    forged = seal(AuditEvent(type="grant.approved", actor="mallory", data={"i": 7},
                             grant_id="gr_1"), 7, genuine[5].hash, genuine[6].ts, "evt_forged")
    with _db(data_dir) as c:
        c.execute("UPDATE audit_records SET pos = pos + 100 WHERE pos >= 8")
        c.execute(f"INSERT INTO audit_records (pos, {COLS}) VALUES (8,?,?,?,?,?,?,?,?,?,?)",
                  (forged.seq, forged.event_id, forged.ts, forged.type, forged.actor,
                   forged.grant_id, forged.decision_id, json.dumps(dict(forged.data)),
                   forged.prev_hash, forged.hash))
    report = verify_sqlite(data_dir)
    assert [(p.seq, p.code) for p in report.problems] == [(7, "inserted")]
    assert "evt_forged" in report.problems[0].message


def test_forged_replacement_breaks_the_link(data_dir):
    genuine = read_sqlite_audit(data_dir)
    forged = seal(AuditEvent(type="grant.approved", actor="mallory", data={}), 7,
                  genuine[5].hash, genuine[6].ts, "evt_forged")
    with _db(data_dir) as c:
        c.execute("UPDATE audit_records SET event_id = ?, type = ?, actor = ?, grant_id = NULL, "
                  "decision_id = NULL, data = '{}', hash = ? WHERE seq = 7",
                  (forged.event_id, forged.type, forged.actor, forged.hash))
    assert _problems(data_dir) == [(8, "inserted")]


def test_swapped_rows_are_reordered(data_dir):
    with _db(data_dir) as c:
        c.execute("UPDATE audit_records SET pos = -1 WHERE seq = 7")
        c.execute("UPDATE audit_records SET pos = 7 WHERE seq = 8")
        c.execute("UPDATE audit_records SET pos = 8 WHERE seq = 7")
    problems = _problems(data_dir)
    assert len(problems) == 1 and problems[0][1] == "reordered" and problems[0][0] in (7, 8)


def test_deleted_tail_is_truncated(data_dir):
    with _db(data_dir) as c:
        c.execute("DELETE FROM audit_records WHERE seq > 9")
    report = verify_sqlite(data_dir)
    assert [(p.seq, p.code) for p in report.problems] == [(10, "truncated")]
    assert report.head_seq == 9


def test_tampered_checkpoints_are_bad(data_dir):
    with _db(data_dir) as c:
        c.execute("UPDATE audit_checkpoints SET sig = ? WHERE seq = 5", ("A" * 86,))
        c.execute("UPDATE audit_checkpoints SET hash = ? WHERE seq = 10", ("f" * 64,))
    assert _problems(data_dir) == [(5, "bad_checkpoint"), (10, "bad_checkpoint")]


def test_checkpoint_names_another_hash_when_the_whole_tail_is_rewritten(data_dir):
    records = read_sqlite_audit(data_dir)
    prev = records[5].hash
    with _db(data_dir) as c:  # rewrite 7..12 consistently: only the signatures can tell
        for r in records[6:]:
            ev = AuditEvent(type=r.type, actor="mallory", data=r.data, grant_id=r.grant_id,
                            decision_id=r.decision_id)
            new = seal(ev, r.seq, prev, r.ts, r.event_id)
            c.execute("UPDATE audit_records SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                      (new.actor, new.prev_hash, new.hash, r.seq))
            prev = new.hash
    assert _problems(data_dir) == [(10, "bad_checkpoint"), (12, "bad_checkpoint")]


def test_deleted_checkpoints_and_a_rewritten_tail_are_found_given_the_interval(data_dir):
    """The review's attack: drop the checkpoints above seq 5, edit record 7 and re-chain the
    rest. The chain is consistent and every checkpoint left is genuine; only the interval the
    gateway signs at (5 here) shows that checkpoints 10 and 12 are gone."""
    records = read_sqlite_audit(data_dir)
    prev = records[5].hash
    with _db(data_dir) as c:
        c.execute("DELETE FROM audit_checkpoints WHERE seq > 5")
        for r in records[6:]:
            data = {**r.data, "effect": "allow"} if r.seq == 7 else r.data
            new = seal(AuditEvent(type=r.type, actor=r.actor, data=data, grant_id=r.grant_id,
                                  decision_id=r.decision_id), r.seq, prev, r.ts, r.event_id)
            c.execute("UPDATE audit_records SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                      (json.dumps(dict(new.data)), new.prev_hash, new.hash, r.seq))
            prev = new.hash
    blind = verify_sqlite(data_dir)
    assert blind.ok and blind.uncovered == 7  # 6..12: covered by no signature
    report = verify_sqlite(data_dir, checkpoint_every=5)
    assert not report.ok
    assert [(p.seq, p.code) for p in report.problems] == [(10, "missing_checkpoint")]


def test_missing_signing_key_fails_checkpoints(data_dir):
    (data_dir / "audit_signing_key.pem").unlink()
    assert {code for _, code in _problems(data_dir)} == {"bad_checkpoint"}


def test_missing_database_is_unavailable(tmp_path):
    with pytest.raises(StoreUnavailable):
        verify_sqlite(tmp_path / "nothing")
    with pytest.raises(StoreUnavailable):
        read_sqlite_audit(tmp_path / "nothing")
