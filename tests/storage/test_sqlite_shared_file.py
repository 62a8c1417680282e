"""Two processes on one SQLite file (`jitgate serve` beside `jitgate mcp`, or the CLI): what one
of them changes, the other enforces on its next decision.

Each "process" here is its own engine with its own connections and caches on the same file,
as a second process would have.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

from adapters.storage.sqlite import open_sqlite
from gateway.clock import FakeClock
from gateway.keys import KEY_RECHECK_S, KeyAuthenticator, create_key
from gateway.model import Grant, GrantStatus, Principal, Role

AGENT = Principal("agent:coder", Role.AGENT, "coder")


@contextlib.asynccontextmanager
async def two_processes(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Any, Any]]:
    """Two sets of stores on one file, each with its own engine, connections and caches."""
    first, second = open_sqlite(tmp_path, clock=clock), open_sqlite(tmp_path, clock=clock)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def grant(clock: FakeClock) -> Grant:
    now = clock.now()
    return Grant(grant_id="grt_shared", agent_id=AGENT.id, objective="read the docs", scope=(),
                 tier="low", approval="auto", status=GrantStatus.ACTIVE, created_at=now,
                 ttl_s=600, expires_at=now + 600, requested_by=AGENT.id)


async def test_a_grant_revoked_by_another_process_is_seen_at_once(tmp_path: Path):
    clock = FakeClock()
    async with two_processes(tmp_path, clock) as (serve, mcp):
        g = grant(clock)
        await serve.grants.create(g)
        assert (await mcp.grants.get(g.grant_id)).status is GrantStatus.ACTIVE  # now cached
        assert (await mcp.grants.get(g.grant_id)).status is GrantStatus.ACTIVE
        await serve.grants.update(g.evolve(status=GrantStatus.REVOKED, revoked_reason="revoked"),
                                  expected_version=g.version)
        seen = await mcp.grants.get(g.grant_id)
        assert seen.status is GrantStatus.REVOKED and seen.revoked_reason == "revoked"


async def test_counting_a_call_does_not_resurrect_a_grant_revoked_elsewhere(tmp_path: Path):
    clock = FakeClock()
    async with two_processes(tmp_path, clock) as (serve, mcp):
        g = grant(clock)
        await serve.grants.create(g)
        await mcp.grants.get(g.grant_id)  # cached as active
        # revoked by the other process between this process's read and its call count
        await serve.grants.update(g.evolve(status=GrantStatus.REVOKED, revoked_reason="revoked"),
                                  expected_version=g.version)
        await mcp.grants.consume_call(g.grant_id)
        assert (await mcp.grants.get(g.grant_id)).status is GrantStatus.REVOKED


async def test_a_grant_untouched_elsewhere_stays_cached(tmp_path: Path):
    clock = FakeClock()
    async with two_processes(tmp_path, clock) as (serve, mcp):
        g = grant(clock)
        await serve.grants.create(g)
        first = await mcp.grants.get(g.grant_id)
        await serve.keys.add(create_key(Role.AGENT, "other", clock).record)  # another write
        assert await mcp.grants.get(g.grant_id) is first  # checked by version, not re-read


async def test_a_key_disabled_by_another_process_is_refused_within_the_recheck_window(
        tmp_path: Path):
    clock = FakeClock()
    async with two_processes(tmp_path, clock) as (cli, serve):
        new = create_key(Role.AGENT, "coder", clock)
        await cli.keys.add(new.record)
        auth = KeyAuthenticator(serve.keys, clock)
        assert (await auth.authenticate(new.secret_key)).id == new.record.principal.id
        await cli.keys.disable(new.record.key_id)  # `jitgate keys disable`, another process
        clock.advance(KEY_RECHECK_S)
        assert await auth.authenticate(new.secret_key) is None


async def test_a_recheck_after_a_write_sees_what_another_process_committed_before_it(
        tmp_path: Path):
    clock = FakeClock()
    async with two_processes(tmp_path, clock) as (serve, mcp):
        g = grant(clock)
        await serve.grants.create(g)
        assert (await mcp.grants.recheck(g.grant_id)).status is GrantStatus.ACTIVE
        await serve.grants.update(g.evolve(status=GrantStatus.REVOKED, revoked_reason="revoked"),
                                  expected_version=g.version)
        await mcp.keys.add(create_key(Role.AGENT, "lease-like", clock).record)  # our own write
        assert (await mcp.grants.recheck(g.grant_id)).status is GrantStatus.REVOKED
