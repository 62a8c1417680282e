"""PostgreSQL login roles minted per call through the real gateway: the role works with exactly the
policy's privileges, its DSN never reaches the agent, and it is dropped when the call is reported,
when the grant is revoked, and by the runtime's sweeper once its lease has expired."""

from __future__ import annotations

import secrets

import pytest
from cred_gateway_support import POLICIES, client, request_grant

from gateway.model import ToolCall
from tests.support.live import start_live_gateway
from tests.support.services import PG_DSN, service_missing

psycopg = pytest.importorskip("psycopg")


def _admin():
    try:
        return psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except Exception:
        service_missing(f"postgresql at {PG_DSN}")


def roles(prefix: str) -> list[str]:
    with _admin() as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE left(rolname, %s) = %s",
                            (len(prefix), prefix)).fetchall()
    return [r[0] for r in rows]


def wait_until(predicate, what: str) -> None:
    """Wait for the sweeper's background task (real time, not time logic: the clock is fake)."""
    import threading

    pause = threading.Event()
    for _ in range(500):
        if predicate():
            return
        pause.wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pg(tmp_path):
    schema = f"jgcred_{secrets.token_hex(5)}"
    prefix = f"jgt{secrets.token_hex(3)}_"
    with _admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.items (id int PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO {schema}.items VALUES (1, 'one'), (2, 'two')")
    policy = tmp_path / "postgres_tools.yaml"
    policy.write_text((POLICIES / "postgres_tools.yaml").read_text().replace("__SCHEMA__", schema))
    live = start_live_gateway(tmp_path / "data", policy_files=[str(policy)], drift_enabled=False,
                              credential_issuers={"postgres": {
                                  "admin_dsn": PG_DSN, "role_prefix": prefix,
                                  "sweep_interval_s": 0.05}})
    yield live, schema, prefix
    live.stop()
    with _admin() as conn:
        for role in roles(prefix):
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_minted_role_works_and_is_dropped_when_the_call_completes(pg):
    live, schema, prefix = pg
    agent = client(live, "agent")
    gid = request_grant(agent, "db.query", objective="count the items in the catalogue")
    principal = live.run(live.runtime.gateway.authenticate(live.keys["agent"]))
    auth = live.run(live.runtime.gateway.authorize(ToolCall(
        agent=principal, tool="db.query", arguments={"query": "count items"}, grant_id=gid)))
    assert auth.decision.allowed, auth.decision
    dsn = auth.credential.forward["dsn"]
    role = auth.credential.forward["role"]
    assert role.startswith(prefix) and roles(prefix) == [role]
    assert auth.credential.value is None and auth.credential.lease.kind == "postgres"
    public = repr(auth.public()) + repr(auth.credential)
    assert "postgresql://" not in public and role not in public

    with psycopg.connect(dsn, connect_timeout=3) as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.items").fetchone() == (2,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"INSERT INTO {schema}.items VALUES (3, 'three')")

    done = agent.post(f"/v1/decisions/{auth.decision.decision_id}/result",
                      json={"ok": True, "output": {"count": 2}})
    assert done.status_code == 200, done.text
    assert roles(prefix) == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3).close()
    lease = agent.get(f"/v1/grants/{gid}/leases").json()["leases"]
    assert [(l["kind"], l["revoked"]) for l in lease] == [("postgres", True)]


def test_the_agent_never_sees_the_dsn_and_revocation_drops_the_role(pg):
    live, schema, prefix = pg
    agent = client(live, "agent")
    gid = request_grant(agent, "db.query", objective="count the items in the catalogue")
    r = agent.post("/v1/authorize", json={"tool": "db.query", "grant_id": gid,
                                          "arguments": {"query": "count items"}})
    out = r.json()
    assert out["effect"] == "allow", out
    assert out["credential"]["kind"] == "postgres" and "token" not in out["credential"]
    [role] = roles(prefix)
    for text in (r.text, agent.get(f"/v1/grants/{gid}/leases").text,
                 client(live, "admin").get("/v1/audit?limit=1000").text):
        assert "postgresql://" not in text and role not in text

    revoked = client(live, "reviewer").post(f"/v1/grants/{gid}/revoke", json={"reason": "done"})
    assert revoked.json()["status"] == "revoked"
    assert roles(prefix) == []


def test_the_sweeper_drops_a_role_whose_lease_expired(pg):
    live, schema, prefix = pg
    agent = client(live, "agent")
    gid = request_grant(agent, "db.query", objective="count the items in the catalogue")
    out = agent.post("/v1/authorize", json={"tool": "db.query", "grant_id": gid,
                                            "arguments": {"query": "count items"}}).json()
    assert out["effect"] == "allow", out
    assert len(roles(prefix)) == 1
    live.clock.advance(out["credential"]["expires_at"] - live.clock.now() + 1)
    wait_until(lambda: roles(prefix) == [], "the sweeper to drop the expired role")
