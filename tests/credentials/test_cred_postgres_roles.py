"""Minted PostgreSQL roles against the real server on 127.0.0.1:5432."""

import base64
import hashlib
import hmac
import os
import time
import uuid
from urllib.parse import unquote, urlsplit

import pytest
from cred_support import make_request, service_missing

from gateway.clock import FakeClock

psycopg = pytest.importorskip("psycopg")
from adapters.credentials.postgres_roles import PostgresRoleIssuer  # noqa: E402

DSN = os.environ.get("JITGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg():
    try:
        admin = await psycopg.AsyncConnection.connect(DSN, autocommit=True, connect_timeout=3)
    except Exception:
        service_missing("postgresql at " + DSN)
    tag = uuid.uuid4().hex[:8]
    schema, prefix = f"s_{tag}", f"jg_t{tag}_"
    await admin.execute(f"CREATE SCHEMA {schema}")
    await admin.execute(f"CREATE TABLE {schema}.orders (id int, total int)")
    await admin.execute(f"CREATE TABLE {schema}.payroll (id int, salary int)")
    await admin.execute(f"INSERT INTO {schema}.orders VALUES (1, 10), (2, 20)")
    yield admin, schema, prefix
    leftover = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=FakeClock(time.time()))
    await leftover.sweep(live_leases=())
    await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    await admin.close()


def options(schema, privilege="SELECT", tables=("orders",)):
    return {"privileges": [{"privilege": privilege, "tables": [f"{schema}.{t}" for t in tables]}]}


async def role_rows(admin, prefix):
    cur = await admin.execute(
        "SELECT rolname, rolvaliduntil, shobj_description(oid, 'pg_authid') FROM pg_roles "
        "WHERE left(rolname, %s) = %s", (len(prefix), prefix))
    return await cur.fetchall()


async def test_role_works_for_the_allowed_statement_only_and_is_gone_after_release(pg):
    admin, schema, prefix = pg
    clock = FakeClock(time.time())
    issuer = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=clock)
    cred = await issuer.mint(make_request("db.query", {"sql": "select"}, now=clock.now(),
                                          ttl_s=120, lease_id="ls_pg1",
                                          options=options(schema)))
    assert cred.value is None and cred.lease.kind == "postgres"
    assert cred.lease.lease_id == "ls_pg1" and cred.lease.expires_at == clock.now() + 120
    dsn = cred.forward["dsn"]
    assert dsn not in repr(cred)

    [(role, valid_until, comment)] = await role_rows(admin, prefix)
    assert abs(valid_until.timestamp() - (clock.now() + 120)) < 1
    assert "ls_pg1" in comment and role == cred.forward["role"]

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(f"SELECT sum(total) FROM {schema}.orders")
        assert (await cur.fetchone())[0] == 30
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(f"INSERT INTO {schema}.orders VALUES (3, 30)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(f"SELECT * FROM {schema}.payroll")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(f"CREATE TABLE {schema}.mine (x int)")

        await issuer.release(cred.lease, "call_completed")
        with pytest.raises(psycopg.OperationalError):  # its session was terminated
            await conn.execute("SELECT 1")

    assert await role_rows(admin, prefix) == []
    with pytest.raises(psycopg.OperationalError):
        await psycopg.AsyncConnection.connect(dsn)
    await issuer.release(cred.lease, "again")  # idempotent


async def test_password_is_stored_as_scram_and_matches_the_dsn(pg):
    """The test server trusts 127.0.0.1 (no password or VALID UNTIL check at login), so prove
    instead that the server holds a SCRAM verifier the handed-out password satisfies."""
    admin, schema, prefix = pg
    clock = FakeClock(time.time())
    issuer = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=clock)
    cred = await issuer.mint(make_request("db.query", now=clock.now(), options=options(schema)))
    cur = await admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                              (cred.forward["role"],))
    stored = (await cur.fetchone())[0]
    password = unquote(urlsplit(cred.forward["dsn"]).password)
    assert password not in stored
    method, rest = stored.split("$", 1)
    iter_salt, keys = rest.split("$")
    iterations, salt = iter_salt.split(":")
    stored_key, _server_key = keys.split(":")
    assert method == "SCRAM-SHA-256" and int(iterations) >= 4096
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt),
                                 int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
    await issuer.release(cred.lease, "done")


async def test_valid_until_in_the_past_is_set_and_swept(pg):
    admin, schema, prefix = pg
    clock = FakeClock(time.time() - 3600)  # minted an hour ago with a 60 s TTL
    issuer = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=clock)
    cred = await issuer.mint(make_request("db.query", now=clock.now(), ttl_s=60,
                                          options=options(schema)))
    [(_, valid_until, _)] = await role_rows(admin, prefix)
    assert valid_until.timestamp() < time.time() - 3000
    clock.set(time.time())
    assert await issuer.sweep() == [cred.forward["role"]]
    assert await role_rows(admin, prefix) == []


async def test_sweeper_cleans_up_after_a_crash(pg):
    admin, schema, prefix = pg
    clock = FakeClock(time.time())
    crashed = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=clock)
    live = await crashed.mint(make_request("db.query", now=clock.now(), ttl_s=300,
                                           lease_id="ls_live", options=options(schema)))
    orphan = await crashed.mint(make_request("db.query", now=clock.now(), ttl_s=300,
                                             lease_id="ls_orphan", options=options(schema)))
    short = await crashed.mint(make_request("db.query", now=clock.now(), ttl_s=30,
                                            lease_id="ls_short", options=options(schema)))
    del crashed  # the process died: no release

    restarted = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=clock)
    assert await restarted.sweep() == []  # nothing expired yet, no live set given
    clock.advance(31)
    assert await restarted.sweep() == [short.forward["role"]]
    dropped = await restarted.sweep(live_leases={"ls_live", "ls_short"})
    assert dropped == [orphan.forward["role"]]
    assert [r[0] for r in await role_rows(admin, prefix)] == [live.forward["role"]]
    await restarted.release(live.lease, "revoked")  # found through the role comment
    assert await role_rows(admin, prefix) == []


async def test_roles_without_our_comment_are_left_alone(pg):
    admin, schema, prefix = pg
    await admin.execute(f"CREATE ROLE {prefix}human NOLOGIN")
    try:
        issuer = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=FakeClock(time.time()))
        assert await issuer.sweep(live_leases=()) == []
    finally:
        await admin.execute(f"DROP ROLE {prefix}human")


@pytest.mark.parametrize("opts", [
    {},
    {"privileges": [{"privilege": "ALL", "tables": ["orders"]}]},
    {"privileges": [{"privilege": "SELECT; DROP TABLE x", "tables": ["orders"]}]},
    {"privileges": [{"privilege": "SELECT", "tables": []}]},
    {"privileges": [{"privilege": "SELECT", "tables": ["a.b.c"]}]},
])
async def test_invalid_privileges_are_refused(pg, opts):
    admin, schema, prefix = pg
    issuer = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=FakeClock(time.time()))
    with pytest.raises(ValueError):
        await issuer.mint(make_request("db.query", now=time.time(), options=opts))


async def test_a_failed_grant_leaves_no_role_behind(pg):
    admin, schema, prefix = pg
    issuer = PostgresRoleIssuer(DSN, role_prefix=prefix, clock=FakeClock(time.time()))
    with pytest.raises(psycopg.Error):
        await issuer.mint(make_request("db.query", now=time.time(), options=options(
            schema, tables=('orders"; DROP TABLE payroll; --',))))
    assert await role_rows(admin, prefix) == []
    cur = await admin.execute(f"SELECT count(*) FROM {schema}.payroll")
    assert (await cur.fetchone())[0] == 0
