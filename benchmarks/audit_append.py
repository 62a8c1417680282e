"""Audit append throughput and latency: memory vs SQLite (vs PostgreSQL if reachable).

    .venv/bin/python benchmarks/audit_append.py [--n 20000] [--pg-dsn DSN]

Prints appends/s for 1 and 32 concurrent appenders and the idle p50 latency. The SQLite store
runs with WAL + synchronous=FULL: every append is durable before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.storage.memory import MemoryAuditLog  # noqa: E402
from adapters.storage.signer import Ed25519FileSigner  # noqa: E402
from adapters.storage.sqlite import open_sqlite  # noqa: E402
from gateway.ports import AuditEvent  # noqa: E402

EVENT = AuditEvent(type="call.decided", actor="agent_bench", grant_id="gr_bench",
                   decision_id="dec_bench",
                   data={"effect": "allow", "code": "allowed", "tool": "billing.refund",
                         "args_digest": "a" * 64, "rule_ids": ["r1"], "policy_revision": "rev1"})


async def _run(log: Any, n: int, conc: int) -> float:
    async def worker(k: int) -> None:
        for _ in range(k):
            await log.append(EVENT)

    t = time.perf_counter()
    await asyncio.gather(*[worker(n // conc) for _ in range(conc)])
    return (n // conc * conc) / (time.perf_counter() - t)


async def _idle_p50(log: Any, n: int = 300) -> float:
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        await log.append(EVENT)
        lat.append(time.perf_counter() - t)
    return statistics.median(lat) * 1000


async def bench(name: str, log: Any, n: int) -> None:
    await _idle_p50(log, 200)  # warm up (WAL file growth, caches)
    p50 = await _idle_p50(log)
    one = await _run(log, max(n // 10, 500), 1)
    many = await _run(log, n, 32)
    print(f"{name:<10} 1 appender: {one:>9,.0f}/s   32 appenders: {many:>9,.0f}/s   "
          f"idle p50: {p50:.3f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        signer = Ed25519FileSigner(Path(d) / "key.pem")
        await bench("memory", MemoryAuditLog(signer=signer), args.n)
        stores = open_sqlite(Path(d) / "db", signer=signer)
        await bench("sqlite", stores.audit, args.n)
        report = await stores.audit.verify()
        await stores.close()
        print(f"{'':<10} sqlite chain verified: {report.ok} ({report.count} records)")
        try:
            from adapters.storage.postgres import open_postgres

            schema = "bench_" + secrets.token_hex(4)
            pg = await open_postgres(args.pg_dsn, schema=schema, signer=signer, timeout_s=3)
        except Exception as exc:
            print(f"postgres   skipped ({type(exc).__name__})")
            return
        try:
            await bench("postgres", pg.audit, max(args.n // 4, 1000))
        finally:
            await pg.close()
            import psycopg

            async with await psycopg.AsyncConnection.connect(args.pg_dsn, autocommit=True) as c:
                await c.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    asyncio.run(main())
