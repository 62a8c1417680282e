"""The pure chain: format, verification of each problem, export and reading helpers."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace

import rfc8785

from adapters.storage.memory import MemoryAuditLog
from adapters.storage.signer import Ed25519FileSigner
from gateway.audit import (GENESIS, export_jsonl, last_records, load_jsonl,
                           missing_checkpoints, read_audit, record_hash, verify_chain)
from gateway.clock import FakeClock
from gateway.ports import AuditEvent


async def _log(n: int, signer=None, every: int = 100) -> MemoryAuditLog:  # type: ignore[no-untyped-def]
    log = MemoryAuditLog(signer=signer, checkpoint_every=every, clock=FakeClock())
    for i in range(1, n + 1):
        await log.append(AuditEvent(type="call.decided", actor="agent_a", data={"i": i},
                                    grant_id=f"gr_{i % 2}", decision_id=f"dec_{i}"))
    return log


async def test_record_format_is_the_documented_one():
    log = await _log(2)
    r = log.records[0]
    body = {"seq": 1, "event_id": r.event_id, "ts": 1_800_000_000.0, "type": "call.decided",
            "actor": "agent_a", "grant_id": "gr_1", "decision_id": "dec_1", "data": {"i": 1},
            "prev_hash": GENESIS}
    assert r.hash == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert r.as_dict() == {**body, "hash": r.hash}
    assert log.records[1].prev_hash == r.hash


def _codes(records, checkpoints=(), keys=None) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    return [(p.seq, p.code) for p in verify_chain(records, checkpoints, keys).problems]


async def test_each_problem_is_named():
    recs = (await _log(10)).records
    assert verify_chain(recs).ok
    assert verify_chain([]).ok and verify_chain([]).head_hash == GENESIS
    edited = list(recs)
    edited[3] = replace(recs[3], data={"i": 400})
    assert _codes(edited) == [(4, "modified")]
    assert _codes(recs[:4] + recs[6:]) == [(5, "deleted")]
    assert _codes(recs[1:]) == [(1, "deleted")]
    swapped = recs[:4] + [recs[5], recs[4]] + recs[6:]
    assert len(_codes(swapped)) == 1 and _codes(swapped)[0][1] == "reordered"
    moved = [recs[9]] + recs[:9]
    assert _codes(moved) == [(10, "reordered")]
    dup = recs[:5] + [replace(recs[4], event_id="evt_x")] + recs[5:]
    dup[5] = replace(dup[5], hash=record_hash(dup[5]))
    assert _codes(dup) == [(5, "inserted")]


async def test_checkpoints_sign_and_anchor(tmp_path):
    signer = Ed25519FileSigner(tmp_path)
    log = await _log(10, signer, every=4)
    await log.close()
    assert [c.seq for c in log.checkpoints] == [4, 8, 10]
    keys = signer.public_keys()
    assert verify_chain(log.records, log.checkpoints, keys).ok
    assert _codes(log.records, log.checkpoints, {}) == [(4, "bad_checkpoint"),
                                                        (8, "bad_checkpoint"),
                                                        (10, "bad_checkpoint")]
    assert _codes(log.records[:9], log.checkpoints, keys) == [(10, "truncated")]
    forged = replace(log.checkpoints[0], ts=log.checkpoints[0].ts + 1)
    assert _codes(log.records, [forged], keys) == [(4, "bad_checkpoint")]


def _rechain(records, start, edit):  # type: ignore[no-untyped-def]
    """What someone with write access to the store can do: edit record `start` and re-chain
    every record after it (each hash recomputed), keeping seq, ids and times."""
    out = list(records[:start - 1])
    prev = out[-1].hash if out else GENESIS
    for r in records[start - 1:]:
        r = replace(r, data=edit(r.data) if r.seq == start else r.data, prev_hash=prev)
        r = replace(r, hash=record_hash(r))
        out.append(r)
        prev = r.hash
    return out


async def test_deleted_checkpoints_are_missing_so_a_rewritten_tail_does_not_verify(tmp_path):
    signer = Ed25519FileSigner(tmp_path)
    log = await _log(10, signer, every=4)
    await log.close()
    keys = signer.public_keys()
    report = verify_chain(log.records, log.checkpoints, keys, checkpoint_every=4)
    assert report.ok and report.uncovered == 0 and report.checkpoint_every == 4
    # drop the checkpoints above seq 4, rewrite record 6 and re-chain 6..10
    kept = [cp for cp in log.checkpoints if cp.seq <= 4]
    forged = _rechain(log.records, 6, lambda d: {**d, "effect": "allow"})
    report = verify_chain(forged, kept, keys, checkpoint_every=4)
    assert not report.ok
    assert [(p.seq, p.code) for p in report.problems] == [(8, "missing_checkpoint")]
    assert "seq 8 " in report.problems[0].message and "every 4" in report.problems[0].message
    assert report.uncovered == 6  # 5..10: no signature covers them
    assert report.as_dict()["uncovered"] == 6
    # a verifier not told the interval cannot tell, but still counts what no signature covers
    blind = verify_chain(forged, kept, keys)
    assert blind.ok and blind.uncovered == 6 and blind.checkpoint_every is None


async def test_missing_checkpoints_are_named_in_runs_and_an_open_tail_is_a_count(tmp_path):
    signer = Ed25519FileSigner(tmp_path)
    log = await _log(22, signer, every=4)  # not closed: checkpoints at 4, 8, 12, 16, 20
    keys = signer.public_keys()
    report = verify_chain(log.records, log.checkpoints, keys, checkpoint_every=4)
    assert report.ok and report.uncovered == 2  # 21, 22: normal while the log is open
    no_8_12 = [cp for cp in log.checkpoints if cp.seq not in (8, 12)]
    only_20 = [cp for cp in log.checkpoints if cp.seq == 20]
    assert _missing(log.records, no_8_12, keys, 4) == [(8, "8..12")]
    assert _missing(log.records, only_20, keys, 4) == [(4, "4..16")]
    assert _missing(log.records, [], keys, 4) == [(4, "4..20")]
    assert verify_chain(log.records, [], keys).uncovered == 22
    assert verify_chain(log.records, [], keys, checkpoint_every=0).ok  # 0: checkpoints off
    assert missing_checkpoints(3, [], 4) == []  # nothing is due before the first multiple


def _missing(records, checkpoints, keys, every):  # type: ignore[no-untyped-def]
    report = verify_chain(records, checkpoints, keys, checkpoint_every=every)
    assert {p.code for p in report.problems} == {"missing_checkpoint"}
    return [(p.seq, p.message.split("seq ", 1)[1].split(" ", 1)[0]) for p in report.problems]


async def test_a_checkpoint_that_does_not_verify_covers_nothing(tmp_path):
    signer = Ed25519FileSigner(tmp_path)
    log = await _log(8, signer, every=4)
    keys = signer.public_keys()
    bad = [log.checkpoints[0], replace(log.checkpoints[1], sig=log.checkpoints[0].sig)]
    report = verify_chain(log.records, bad, keys, checkpoint_every=4)
    assert [(p.seq, p.code) for p in report.problems] == [(8, "bad_checkpoint")]
    assert report.uncovered == 4


async def test_export_and_reload_verifies():
    log = await _log(25)
    buf = io.StringIO()
    assert await export_jsonl(log, buf) == 25
    lines = buf.getvalue().splitlines()
    assert json.loads(lines[0])["seq"] == 1
    assert verify_chain(load_jsonl(io.StringIO(buf.getvalue()))).ok
    tail = io.StringIO()
    assert await export_jsonl(log, tail, after_seq=20) == 5


async def test_read_helpers_page_and_filter():
    log = await _log(25)
    seqs = [r.seq async for r in read_audit(log, after_seq=3, page=4)]
    assert seqs == list(range(4, 26))
    seqs = [r.seq async for r in read_audit(log, grant_id="gr_1", limit=5, page=2)]
    assert seqs == [1, 3, 5, 7, 9]
    assert [r.seq for r in await last_records(log, 3)] == [23, 24, 25]
    assert [r.seq for r in await last_records(await _log(2), 5)] == [1, 2]


async def test_follow_yields_new_records_until_stopped():
    import asyncio

    from gateway.audit import follow

    log = await _log(3)
    stop = asyncio.Event()
    seen: list[int] = []

    async def reader() -> None:
        async for rec in follow(log, after_seq=1, poll_s=0.01, stop=stop):
            seen.append(rec.seq)
            if rec.seq == 5:
                stop.set()

    task = asyncio.create_task(reader())
    while len(seen) < 2:
        await asyncio.sleep(0)
    await log.append(AuditEvent(type="x", actor="a", data={}))
    await log.append(AuditEvent(type="x", actor="a", data={}))
    await asyncio.wait_for(task, 5)
    assert seen == [2, 3, 4, 5]
