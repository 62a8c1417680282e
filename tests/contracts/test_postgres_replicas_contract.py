"""Two gateway replicas append to one PostgreSQL chain; tampering there is found too."""

from __future__ import annotations

import asyncio

from storage_backends import PG_DSN, open_backend

from gateway.ports import AuditEvent


def _ev(i: int) -> AuditEvent:
    return AuditEvent(type="call.decided", actor=f"agent_{i}", data={"i": i})


async def test_two_replicas_share_one_valid_chain(tmp_path):
    from adapters.storage.postgres import open_postgres

    async with open_backend("postgres", tmp_path) as h:
        other = await open_postgres(PG_DSN, schema=h.schema, max_size=4)
        try:
            await asyncio.gather(*[(h.stores if i % 2 else other).audit.append(_ev(i))
                                   for i in range(120)])
        finally:
            await other.close()
        report = await h.stores.audit.verify()
        assert report.ok and report.count == 120 and report.head_seq == 120

        import psycopg

        async with await psycopg.AsyncConnection.connect(PG_DSN,
                                                         autocommit=True) as c:
            await c.execute(f'UPDATE "{h.schema}".audit_records SET actor = %s WHERE seq = 42',
                            ("mallory",))
            await c.execute(f'DELETE FROM "{h.schema}".audit_records WHERE seq = 60')
        report = await h.stores.audit.verify()
        assert [(p.seq, p.code) for p in report.problems] == [(42, "modified"), (60, "deleted")]
