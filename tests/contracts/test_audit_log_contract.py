"""AuditLog contract: chain order and validity, filters, durability, fail closed."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from storage_backends import BACKENDS, Harness, harness, open_backend  # noqa: F401  (fixture)

from adapters.storage.signer import Ed25519FileSigner
from gateway.audit import GENESIS, record_hash, verify_chain
from gateway.ports import AuditEvent, StoreUnavailable


def _ev(i: int, grant: str | None = None, decision: str | None = None) -> AuditEvent:
    return AuditEvent(type="call.decided", actor=f"agent_{i % 3}", data={"i": i, "ok": True},
                      grant_id=grant, decision_id=decision)


async def _verify(h: Harness, keys=None):  # type: ignore[no-untyped-def]
    return await h.stores.audit.verify(keys)


async def test_append_chains_in_order(harness):
    log = harness.stores.audit
    assert await log.head() == (0, GENESIS)
    r1 = await log.append(_ev(1))
    r2 = await log.append(AuditEvent(type="grant.requested", actor="agent_a", data={},
                                     grant_id="gr_1", ts=123.5))
    assert (r1.seq, r1.prev_hash) == (1, GENESIS)
    assert (r2.seq, r2.prev_hash, r2.ts) == (2, r1.hash, 123.5)
    assert r1.ts == harness.clock.now()
    assert record_hash(r1) == r1.hash and record_hash(r2) == r2.hash
    assert await log.head() == (2, r2.hash)
    assert await log.read() == [r1, r2]
    rs = await log.append_many([_ev(3), _ev(4)])
    assert [r.seq for r in rs] == [3, 4] and rs[0].prev_hash == r2.hash


async def test_200_concurrent_appends_form_one_valid_chain(harness):
    log = harness.stores.audit
    got = await asyncio.gather(*[log.append(_ev(i)) for i in range(200)])
    assert sorted(r.seq for r in got) == list(range(1, 201))
    stored = await log.read(limit=1000)
    assert stored == sorted(got, key=lambda r: r.seq)
    report = await _verify(harness)
    assert report.ok and report.count == 200 and report.head_seq == 200
    assert (report.head_seq, report.head_hash) == await log.head()


async def test_read_filters(harness):
    log = harness.stores.audit
    for i in range(1, 31):
        await log.append(_ev(i, grant=f"gr_{i % 3}", decision=f"dec_{i}"))
    assert [r.seq for r in await log.read(after_seq=25)] == [26, 27, 28, 29, 30]
    assert [r.seq for r in await log.read(after_seq=5, limit=3)] == [6, 7, 8]
    assert [r.seq for r in await log.read(grant_id="gr_1")] == list(range(1, 31, 3))
    assert [r.seq for r in await log.read(grant_id="gr_1", after_seq=20)] == [22, 25, 28]
    assert [r.seq for r in await log.read(decision_id="dec_7")] == [7]
    assert await log.read(decision_id="dec_7", grant_id="gr_0") == []


async def test_unhashable_event_fails_alone(harness):
    log = harness.stores.audit
    bad = AuditEvent(type="call.decided", actor="a", data={"x": float("nan")})
    results = await asyncio.gather(log.append(_ev(1)), log.append(bad), log.append(_ev(2)),
                                   return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert sorted(r.seq for r in (results[0], results[2])) == [1, 2]
    assert (await _verify(harness)).ok


@pytest.mark.parametrize("backend", BACKENDS)
async def test_signed_checkpoints_verify(backend, tmp_path):
    signer = Ed25519FileSigner(tmp_path / "signer")
    async with open_backend(backend, tmp_path, signer=signer, checkpoint_every=10) as h:
        await asyncio.gather(*[h.stores.audit.append(_ev(i)) for i in range(25)])
        cps = await h.stores.audit.read_checkpoints()
        assert [c.seq for c in cps] == [10, 20]
        assert all(c.kid == signer.kid for c in cps)
        assert (await _verify(h)).ok
        report = await _verify(h, Ed25519FileSigner(tmp_path / "other").public_keys())
        assert not report.ok
        assert [(p.seq, p.code) for p in report.problems] == [(10, "bad_checkpoint"),
                                                              (20, "bad_checkpoint")]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_chain_continues_after_reopen(backend, tmp_path):
    signer = Ed25519FileSigner(tmp_path / "signer")
    async with open_backend(backend, tmp_path, signer=signer, checkpoint_every=4) as h:
        first = [await h.stores.audit.append(_ev(i)) for i in range(6)]
        await h.reopen()
        assert [c.seq for c in await h.stores.checkpoints()] == [4, 6]
        assert await h.stores.audit.head() == (6, first[-1].hash)
        nxt = await h.stores.audit.append(_ev(7))
        assert (nxt.seq, nxt.prev_hash) == (7, first[-1].hash)
        report = await h.stores.audit.verify()
        assert report.ok and report.count == 7


async def test_memory_log_fails_closed():
    from adapters.storage.memory import MemoryAuditLog

    log = MemoryAuditLog()
    await log.append(_ev(1))
    log.fail_next(1)
    with pytest.raises(StoreUnavailable):
        await log.append(_ev(2))
    log.broken = True
    with pytest.raises(StoreUnavailable):
        await log.append_many([_ev(3), _ev(4)])
    log.broken = False
    r = await log.append(_ev(5))
    assert r.seq == 2 and (await log.verify()).ok


async def test_sqlite_append_fails_closed_when_the_file_cannot_be_written(tmp_path):
    async with open_backend("sqlite", tmp_path) as h:
        log = h.stores.audit
        r1 = await log.append(_ev(1))
        blocker = sqlite3.connect(tmp_path / "jitgate.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file: nothing can commit
        try:
            results = await asyncio.gather(*[log.append(_ev(i)) for i in range(5)],
                                           return_exceptions=True)
            assert all(isinstance(x, StoreUnavailable) for x in results)
            assert await log.head() == (1, r1.hash)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        r2 = await log.append(_ev(2))
        assert (r2.seq, r2.prev_hash) == (2, r1.hash)
        assert (await log.verify()).ok and (await log.verify()).count == 2


async def test_append_after_close_raises(harness):
    await harness.stores.audit.append(_ev(1))
    await harness.stores.close()
    with pytest.raises(StoreUnavailable):
        await harness.stores.audit.append(_ev(2))


async def test_postgres_append_fails_closed_when_the_connection_is_gone(tmp_path):
    async with open_backend("postgres", tmp_path) as h:
        await h.stores.audit.append(_ev(1))
        await h.stores.pool.raw.close()  # the pool is gone underneath the log
        with pytest.raises(StoreUnavailable):
            await h.stores.audit.append(_ev(2))
        with pytest.raises(StoreUnavailable):
            await h.stores.grants.get("gr_1")


def test_verify_chain_of_a_reopened_sqlite_file_offline(tmp_path):
    from adapters.storage.sqlite import open_sqlite, read_sqlite_audit, verify_sqlite

    async def fill() -> None:
        stores = open_sqlite(tmp_path, signer=Ed25519FileSigner(tmp_path), checkpoint_every=5)
        await asyncio.gather(*[stores.audit.append(_ev(i)) for i in range(12)])
        await stores.close()

    asyncio.run(fill())
    report = verify_sqlite(tmp_path)
    assert report.ok and report.count == 12 and report.checkpoints == 3
    assert [r.seq for r in read_sqlite_audit(tmp_path, after_seq=10)] == [11, 12]
    assert verify_chain(read_sqlite_audit(tmp_path)).ok


async def test_sqlite_writer_bug_fails_the_round_closed(tmp_path, monkeypatch):
    async with open_backend("sqlite", tmp_path) as h:
        r1 = await h.stores.audit.append(_ev(1))

        def boom(items):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

        monkeypatch.setattr(h.stores.engine, "_insert_audit", boom)
        with pytest.raises(StoreUnavailable):
            await h.stores.audit.append(_ev(2))
        monkeypatch.undo()
        r2 = await h.stores.audit.append(_ev(3))
        assert (r2.seq, r2.prev_hash) == (2, r1.hash)


async def test_two_sqlite_openers_share_one_chain(tmp_path):
    from adapters.storage.sqlite import open_sqlite

    signer = Ed25519FileSigner(tmp_path)
    a = open_sqlite(tmp_path, signer=signer, checkpoint_every=7)
    b = open_sqlite(tmp_path, signer=signer, checkpoint_every=7)  # e.g. a CLI next to a server
    try:
        await asyncio.gather(*[(a if i % 2 else b).audit.append(_ev(i)) for i in range(60)])
        assert (await a.audit.head())[0] == 60 == (await b.audit.head())[0]
    finally:
        await a.close()
        await b.close()
    from adapters.storage.sqlite import verify_sqlite

    report = verify_sqlite(tmp_path)
    assert report.ok and report.count == 60
