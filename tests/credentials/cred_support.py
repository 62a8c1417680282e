"""Shared helpers for the credential tests (imported by module name: tests have no packages)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

import uvicorn

from gateway.clock import FakeClock
from gateway.model import Grant, GrantStatus, Lease, Principal, Role, ToolCall
from gateway.ports import MintRequest

__all__ = ["service_missing", "make_request", "serve", "MemoryLeases", "World", "make_grant",
           "ISS"]

ISS = "https://gateway.test"

_spec = importlib.util.spec_from_file_location(
    "_jitgate_tests_root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_root)  # type: ignore[union-attr]
service_missing = _root.service_missing


def make_request(tool: str = "billing.refund", arguments: Mapping[str, Any] | None = None, *,
                 now: float, agent: str = "agent-1", grant: str | None = "gr_1",
                 ttl_s: float = 30, audience: str = "billing", lease_id: str = "ls_1",
                 options: Mapping[str, Any] | None = None) -> MintRequest:
    from gateway.digest import args_digest

    arguments = dict(arguments if arguments is not None else {"order": "o-1", "amount": 10})
    call = ToolCall(agent=Principal(agent, Role.AGENT), tool=tool, arguments=arguments,
                    grant_id=grant, call_id="c_1")
    return MintRequest(call=call, decision_id="dec_1", args_digest=args_digest(arguments),
                       ttl_s=ttl_s, audience=audience, lease_id=lease_id, now=now,
                       options=dict(options or {}))


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (random port) in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # readiness poll, not time logic
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class MemoryLeases:
    """A tiny LeaseStore for introspection tests (the lead's stores live in adapters/storage)."""

    def __init__(self) -> None:
        self.leases: dict[str, Lease] = {}

    async def add(self, lease: Lease) -> None:
        self.leases[lease.lease_id] = lease

    async def get(self, lease_id: str) -> Lease | None:
        return self.leases.get(lease_id)

    async def list_for_grant(self, grant_id: str, live_only: bool = False,
                             now: float | None = None) -> list[Lease]:
        return [l for l in self.leases.values() if l.grant_id == grant_id]

    async def revoke(self, lease_id: str, reason: str) -> bool:
        from dataclasses import replace

        lease = self.leases.get(lease_id)
        if lease is None:
            return False
        self.leases[lease_id] = replace(lease, revoked=True, revoked_reason=reason)
        return True


def make_grant(now, status=GrantStatus.ACTIVE, ttl=600):
    return Grant(grant_id="gr_1", agent_id="agent-1", objective="refund order o-1", scope=(),
                 tier="low", approval="auto", status=status, created_at=now, ttl_s=ttl,
                 expires_at=now + ttl, requested_by="agent-1")


class World:
    def __init__(self):
        from adapters.credentials import CallTokenIssuer, Keyring

        self.jwks_hits = 0
        self.clock = FakeClock()
        self.keyring = Keyring.ephemeral(self.clock)
        self.issuer = CallTokenIssuer(self.keyring, ISS, self.clock)
        self.leases = MemoryLeases()
        self.grants = {"gr_1": make_grant(self.clock.now())}
        self.used: set[str] = set()

    async def mint(self, **kw):
        cred = await self.issuer.mint(make_request(now=self.clock.now(), **kw))
        await self.leases.add(cred.lease)
        return cred

    async def ask(self, token):
        from adapters.credentials.introspection import introspect

        async def grant_lookup(gid):
            return self.grants.get(gid)

        async def used(jti):
            return jti in self.used

        return await introspect(token, keyring=self.keyring, leases=self.leases,
                                grant_lookup=grant_lookup, used=used, clock=self.clock,
                                issuer=ISS)

    def app(self) -> Any:
        """The two gateway routes a tool's verifier talks to, as the lead will wire them."""
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from adapters.credentials.introspection import parse_introspection_form

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_hits += 1
            return JSONResponse(self.keyring.jwks())

        async def introspection(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != "Bearer tool-secret":
                return JSONResponse({"error": {"code": "unauthenticated", "message": "no"}},
                                    status_code=401)
            token = parse_introspection_form(await request.body())
            return JSONResponse(await self.ask(token or ""))

        return Starlette(routes=[Route("/.well-known/jwks.json", jwks),
                                 Route("/v1/introspect", introspection, methods=["POST"])])
