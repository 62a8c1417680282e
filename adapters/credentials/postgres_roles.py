"""Real minted credentials: one PostgreSQL login role per allowed call, dropped when the lease ends.

``mint`` creates ``<prefix><random>`` with a random password (sent to the server as a SCRAM
verifier, so the password itself is in no statement or server log), ``VALID UNTIL`` now + TTL and
exactly the privileges ``request.options["privileges"]`` names; the tool gets a connection string
in ``Credential.forward["dsn"]`` (never ``value``: nothing for the agent). ``release`` terminates the
role's sessions, revokes everything and drops it. The role's COMMENT records its lease, database
and expiry, so ``sweep`` can clean up after a crash without any local state.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Collection, Mapping
from urllib.parse import quote

from gateway.clock import Clock
from gateway.model import Credential, Lease
from gateway.ports import MintRequest


__all__ = ["PostgresRoleIssuer", "PRIVILEGES", "scram_sha256_verifier", "COMMENT_MARK"]

PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES",
                        "TRIGGER"})
COMMENT_MARK = "jitgate-lease:"
_PREFIX_RE = re.compile(r"^[a-z_][a-z0-9_]{0,30}$")
_log = logging.getLogger("jitgate.credentials.postgres")


def scram_sha256_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), computed client-side."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _privileges(options: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Validate ``[{"privilege": "SELECT", "tables": ["schema.table", ...]}, ...]``."""
    raw = options.get("privileges")
    if not isinstance(raw, list) or not raw:
        raise ValueError("postgres credentials need a non-empty 'privileges' list")
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for item in raw:
        privilege = str(item.get("privilege", "")).upper() if isinstance(item, Mapping) else ""
        tables = item.get("tables") if isinstance(item, Mapping) else None
        if privilege not in PRIVILEGES:
            raise ValueError(f"privilege {privilege!r} is not allowed")
        if not isinstance(tables, list) or not tables:
            raise ValueError("each privilege needs a non-empty 'tables' list")
        names: list[tuple[str, str]] = []
        for table in tables:
            parts = str(table).split(".")
            if len(parts) == 1:
                parts = ["public", parts[0]]
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"table {table!r} is not schema.table")
            names.append((parts[0], parts[1]))
        out.append((privilege, names))
    return out


class PostgresRoleIssuer:
    """``CredentialIssuer`` of kind ``postgres``."""

    kind = "postgres"

    def __init__(self, admin_dsn: str, *, role_prefix: str = "jg_", clock: Clock,
                 connection_limit: int = 5, tool_host: str | None = None,
                 tool_port: int | None = None) -> None:
        import psycopg  # optional extra: jitgate[postgres]
        from psycopg.conninfo import conninfo_to_dict

        if not _PREFIX_RE.match(role_prefix):
            raise ValueError("role_prefix must be a short lower-case identifier")
        self._psycopg = psycopg
        self.admin_dsn = admin_dsn
        self.role_prefix = role_prefix
        self._clock = clock
        self._connection_limit = int(connection_limit)
        info = conninfo_to_dict(admin_dsn)
        self._default_db = str(info.get("dbname") or "postgres")
        self._tool_host = tool_host or str(info.get("host") or "127.0.0.1")
        self._tool_port = int(tool_port or info.get("port") or 5432)
        self._live: dict[str, tuple[str, str]] = {}  # lease_id -> (role, database)

    # connections -------------------------------------------------------------------------

    async def _connect(self, database: str) -> Any:
        from psycopg.conninfo import make_conninfo

        return await self._psycopg.AsyncConnection.connect(
            make_conninfo(self.admin_dsn, dbname=database), autocommit=True)

    # the port ------------------------------------------------------------------------------

    async def mint(self, request: MintRequest) -> Credential:
        from psycopg import sql

        grants = _privileges(request.options)
        database = str(request.options.get("database") or self._default_db)
        role = f"{self.role_prefix}{secrets.token_hex(8)}"
        password = secrets.token_urlsafe(24)
        expires_at = request.now + float(request.ttl_s)
        valid_until = datetime.fromtimestamp(expires_at, tz=timezone.utc).isoformat()
        comment = COMMENT_MARK + json.dumps({"lease": request.lease_id, "db": database,
                                             "grant": request.call.grant_id, "exp": expires_at})
        r = sql.Identifier(role)
        statements = [
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS NOINHERIT CONNECTION LIMIT {} PASSWORD {} VALID UNTIL {}").format(
                r, sql.Literal(self._connection_limit),
                sql.Literal(scram_sha256_verifier(password)), sql.Literal(valid_until)),
            sql.SQL("COMMENT ON ROLE {} IS {}").format(r, sql.Literal(comment)),
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), r),
        ]
        schemas = sorted({schema for _, tables in grants for schema, _ in tables})
        statements += [sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(s), r)
                       for s in schemas]
        for privilege, tables in grants:
            targets = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables)
            statements.append(sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                sql.SQL(privilege), targets, r))
        conn = await self._connect(database)
        try:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await conn.close()
        self._live[request.lease_id] = (role, database)
        dsn = (f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}"
               f"@{self._tool_host}:{self._tool_port}/{quote(database, safe='')}")
        return Credential(lease=request.lease(self.kind), value=None,
                          forward={"dsn": dsn, "role": role})

    async def release(self, lease: Lease, reason: str) -> None:
        """Drop the lease's role (idempotent; finds it by COMMENT after a restart)."""
        found = self._live.pop(lease.lease_id, None)
        if found is None:
            for role, meta in await self._roles():
                if meta is not None and meta.get("lease") == lease.lease_id:
                    found = (role, str(meta.get("db") or self._default_db))
                    break
        if found is not None:
            await self._drop(*found)

    # sweeping ------------------------------------------------------------------------------

    async def sweep(self, now: float | None = None,
                    live_leases: Collection[str] | None = None) -> list[str]:
        """Drop every role of this prefix whose lease has expired or is not in ``live_leases``.

        Roles with the prefix but without a JITGate comment are not ours and are left alone.
        """
        now = self._clock.now() if now is None else now
        dropped: list[str] = []
        for role, meta in await self._roles():
            if meta is None:
                continue
            expired = float(meta.get("exp", 0)) <= now
            orphan = live_leases is not None and meta.get("lease") not in live_leases
            if expired or orphan:
                await self._drop(role, str(meta.get("db") or self._default_db))
                self._live.pop(str(meta.get("lease")), None)
                dropped.append(role)
        return dropped

    async def run_sweeper(self, interval_s: float,
                          live_leases: Callable[[], Awaitable[Collection[str]]] | None = None
                          ) -> None:
        """Sweep forever (run as a background task; cancel to stop). Errors are logged only."""
        while True:
            try:
                live = await live_leases() if live_leases is not None else None
                dropped = await self.sweep(live_leases=live)
                if dropped:
                    _log.info("swept %d leftover postgres roles", len(dropped))
            except Exception as exc:
                _log.warning("postgres role sweep failed (%s)", type(exc).__name__)
            await asyncio.sleep(interval_s)

    async def _roles(self) -> list[tuple[str, dict[str, Any] | None]]:
        conn = await self._connect(self._default_db)
        try:
            cur = await conn.execute(
                "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles "
                "WHERE left(rolname, %s) = %s", (len(self.role_prefix), self.role_prefix))
            rows = await cur.fetchall()
        finally:
            await conn.close()
        out: list[tuple[str, dict[str, Any] | None]] = []
        for name, comment in rows:
            meta = None
            if isinstance(comment, str) and comment.startswith(COMMENT_MARK):
                try:
                    meta = json.loads(comment[len(COMMENT_MARK):])
                except ValueError:
                    meta = None
            out.append((name, meta if isinstance(meta, dict) else None))
        return out

    async def _drop(self, role: str, database: str) -> None:
        from psycopg import sql

        r = sql.Identifier(role)
        conn = await self._connect(database)
        try:
            cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if await cur.fetchone() is None:
                return
            await conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(r))
            # the timeout form (PostgreSQL 14+) waits until each session has really ended
            await conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                               "WHERE usename = %s AND pid <> pg_backend_pid()", (role,))
            async with conn.transaction():
                await conn.execute(sql.SQL("DROP OWNED BY {}").format(r))
                await conn.execute(sql.SQL("DROP ROLE {}").format(r))
        finally:
            await conn.close()
