"""The credential pieces the composition root wires from settings: issuers by kind, HTTP tool
forwarders, the "was this token used" lookup for introspection, the PostgreSQL role sweeper.

Issuer kinds (policy: ``tools: [{match: ..., credential: {kind: <kind>, ...}}]``):

- ``jwt`` (always, the default): a signed call token; built by the composition root.
- ``secret`` (when ``settings.secrets`` is set): only forwarding material, the upstream's own
  secret, from ``credential.inject`` in policy or the HTTP tool's configured ``inject``.
- ``jwt+secret`` (same condition): both under one lease of kind ``jwt+secret``; the token is the
  credential's value, the secret is in ``forward["headers"]`` or ``forward["env"]``.
- ``postgres`` (when ``settings.credential_issuers["postgres"]`` is set): a login role per call;
  ``jwt+postgres``: a call token plus the role's DSN in ``forward["dsn"]``.
  ``credential_issuers["postgres"]`` takes ``admin_dsn`` and the keyword arguments of
  ``PostgresRoleIssuer``, plus ``sweep_interval_s`` (default 60; 0 disables the sweeper that
  drops roles whose lease expired, e.g. after a crash).

Single use across the gateway and its tools: tools verify with
``RedisReplayStore(redis_url, prefix=REPLAY_PREFIX)`` and the gateway's introspection reads the
same keys when ``settings.redis_url`` is set; ``credential_issuers["jwt"]["replay_prefix"]``
changes the prefix on both sides (tools must be configured with the same value).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable, Mapping

from gateway.clock import Clock
from gateway.config import Settings
from gateway.ports import CredentialIssuer

from .issuer_chain import IssuerChain

__all__ = ["REPLAY_PREFIX", "Closers", "build_issuers", "build_http_tools", "replay_lookup",
           "replay_prefix"]

REPLAY_PREFIX = "jitgate:jti:"
DEFAULT_SWEEP_INTERVAL_S = 60.0
Closers = list[Callable[[], Awaitable[None]]]
_log = logging.getLogger("jitgate.credentials.registry")


def build_issuers(settings: Settings, clock: Clock, base: Mapping[str, CredentialIssuer],
                  closers: Closers | None = None) -> dict[str, CredentialIssuer]:
    """The issuers beyond ``base`` (which holds ``jwt``) that the settings configure."""
    out: dict[str, CredentialIssuer] = {}
    jwt = base.get("jwt")
    pg = settings.credential_issuers.get("postgres")
    if pg:
        from .postgres_roles import PostgresRoleIssuer

        options = {k: v for k, v in pg.items() if k not in ("admin_dsn", "sweep_interval_s")}
        issuer = PostgresRoleIssuer(pg["admin_dsn"], clock=clock, **options)
        out["postgres"] = issuer
        if jwt is not None:
            out["jwt+postgres"] = IssuerChain(jwt, issuer, kind="jwt+postgres")
        interval = float(pg.get("sweep_interval_s", DEFAULT_SWEEP_INTERVAL_S))
        if interval > 0 and closers is not None:
            closers.append(_start_sweeper(issuer, interval))
    if settings.secrets:
        from .secrets import SecretInjectingIssuer, SecretResolver

        secret = SecretInjectingIssuer(SecretResolver(settings.secrets),
                                       _http_injections(settings), clock=clock)
        out["secret"] = secret
        if jwt is not None:
            out["jwt+secret"] = IssuerChain(jwt, secret, kind="jwt+secret")
    return out


def _http_injections(settings: Settings) -> dict[str, Any]:
    from .http_tool import HttpToolSpec

    specs = [HttpToolSpec.from_dict(t) for t in settings.http_tools]
    return {s.name: s.inject for s in specs if s.inject is not None}


def _start_sweeper(issuer: Any, interval_s: float) -> Callable[[], Awaitable[None]]:
    """Run ``issuer.run_sweeper`` on the running loop; the returned closer cancels it."""
    task = asyncio.get_running_loop().create_task(issuer.run_sweeper(interval_s),
                                                  name="jitgate-postgres-sweeper")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    return stop


def build_http_tools(settings: Settings, policy: Any = None) -> dict[str, Any]:
    """``{tool name: forwarder}`` for ``settings.http_tools``.

    With ``policy``, a tool whose configured audience differs from the policy's audience for it
    (or that expects a call token the policy does not mint) is a startup error: ValueError.
    """
    if not settings.http_tools:
        return {}
    from .http_tool import HttpToolForwarder, HttpToolSpec
    from .secrets import SecretResolver

    specs = [HttpToolSpec.from_dict(t) for t in settings.http_tools]
    forwarder = HttpToolForwarder(specs, resolver=SecretResolver(settings.secrets))
    if policy is not None:
        problems = forwarder.audience_problems(policy)
        if problems:
            raise ValueError("; ".join(problems))
    return {s.name: forwarder for s in specs}


def replay_prefix(settings: Settings) -> str:
    return str((settings.credential_issuers.get("jwt") or {}).get("replay_prefix", REPLAY_PREFIX))


def replay_lookup(settings: Settings, clock: Clock, closers: Closers | None = None
                  ) -> Callable[[str], Awaitable[bool]] | None:
    """``used(jti)`` for introspection: the tools' shared Redis replay store, if configured."""
    if not settings.redis_url:
        return None
    from .replay import RedisReplayStore

    store = RedisReplayStore(settings.redis_url, replay_prefix(settings), clock=clock)
    if closers is not None:
        closers.append(store.aclose)
    return store.seen
