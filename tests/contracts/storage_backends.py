"""Every storage backend behind one harness, for the contract suites.

Imported by module name (tests have no packages). PostgreSQL gets a random schema per test,
dropped afterwards; when the server is not reachable the test calls service_missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from gateway.clock import FakeClock
from gateway.model import ApprovalStatus, CallApproval, Grant, GrantStatus, Lease, ScopeItem

__all__ = ["BACKENDS", "PG_DSN", "Harness", "open_backend", "harness", "make_grant",
           "make_approval", "make_lease", "service_missing", "pg_reachable"]

_spec = importlib.util.spec_from_file_location(
    "_jitgate_tests_root_conftest_storage", Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_root)  # type: ignore[union-attr]
service_missing = _root.service_missing

BACKENDS = ("memory", "sqlite", "postgres")
PG_DSN = os.environ.get("JITGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_pg_ok: bool | None = None


async def pg_reachable() -> bool:
    global _pg_ok
    if _pg_ok is None:
        try:
            import psycopg

            conn = await psycopg.AsyncConnection.connect(PG_DSN, connect_timeout=3)
            await conn.close()
            _pg_ok = True
        except Exception:
            _pg_ok = False
    return _pg_ok



@dataclass
class Harness:
    name: str
    stores: Any
    clock: FakeClock
    tmp: Path
    signer: Any
    checkpoint_every: int
    schema: str = ""

    async def _open(self) -> Any:
        if self.name == "memory":
            from adapters.storage.memory import open_memory

            return open_memory(self.signer, self.checkpoint_every, self.clock)
        if self.name == "sqlite":
            from adapters.storage.sqlite import open_sqlite

            return open_sqlite(self.tmp, signer=self.signer, clock=self.clock,
                               checkpoint_every=self.checkpoint_every, busy_timeout_ms=100)
        from adapters.storage.postgres import open_postgres

        return await open_postgres(PG_DSN, schema=self.schema, signer=self.signer,
                                   clock=self.clock, checkpoint_every=self.checkpoint_every,
                                   max_size=4, timeout_s=3)

    async def reopen(self) -> Any:
        """Close and open the same storage again (not meaningful for memory)."""
        await self.stores.close()
        self.stores = await self._open()
        return self.stores


@contextlib.asynccontextmanager
async def open_backend(name: str, tmp: Path, signer: Any = None,
                       checkpoint_every: int = 100) -> AsyncIterator[Harness]:
    schema = ""
    if name == "postgres":
        if not await pg_reachable():
            service_missing("postgres at " + PG_DSN)
        schema = "t_" + secrets.token_hex(6)
    h = Harness(name=name, stores=None, clock=FakeClock(), tmp=tmp, signer=signer,
                checkpoint_every=checkpoint_every, schema=schema)
    h.stores = await h._open()
    try:
        yield h
    finally:
        with contextlib.suppress(Exception):
            await h.stores.close()
        if schema:
            import psycopg

            async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as c:
                await c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_backend(request.param, tmp_path) as h:
        yield h


def make_grant(grant_id: str | None = None, agent_id: str = "agent_a",
               status: GrantStatus = GrantStatus.ACTIVE, created_at: float = 1_800_000_000.0,
               **kw: Any) -> Grant:
    return Grant(
        grant_id=grant_id or "gr_" + secrets.token_hex(6), agent_id=agent_id,
        objective="refund order 42",
        scope=(ScopeItem("billing.refund", {"amount": {"max": 100}, "/order/id": {"eq": "42"}}),
               ScopeItem("crm.*")),
        tier="privileged", approval="one_human", status=status, created_at=created_at,
        ttl_s=600, expires_at=created_at + 600, requested_by=agent_id, **kw)


def make_approval(approval_id: str | None = None, agent_id: str = "agent_a",
                  grant_id: str | None = "gr_1", tool: str = "billing.refund",
                  args_digest: str = "d" * 64, status: ApprovalStatus = ApprovalStatus.APPROVED,
                  created_at: float = 1_800_000_000.0) -> CallApproval:
    return CallApproval(approval_id=approval_id or "ap_" + secrets.token_hex(6),
                        agent_id=agent_id, grant_id=grant_id, tool=tool,
                        args_digest=args_digest, decision_id="dec_" + secrets.token_hex(4),
                        status=status, created_at=created_at, expires_at=created_at + 300,
                        redacted_args={"amount": 10, "card": "***"})


def make_lease(grant_id: str | None = "gr_1", issued_at: float = 1_800_000_000.0,
               ttl: float = 30.0, lease_id: str | None = None) -> Lease:
    return Lease(lease_id=lease_id or "ls_" + secrets.token_hex(6), grant_id=grant_id,
                 agent_id="agent_a", tool="billing.refund", kind="jwt", issued_at=issued_at,
                 expires_at=issued_at + ttl, decision_id="dec_" + secrets.token_hex(4))
