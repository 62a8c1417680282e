"""Wiring the MCP server into a running gateway: `/mcp` for `jitgate serve`, stdio for `jitgate mcp`."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, AsyncIterator

from mcp.server.transport_security import TransportSecuritySettings

from gateway.config import Settings

from .endpoint import mcp_http_app
from .server import build_mcp_server
from .stdio import GRANT_ENV, KEY_ENV, serve_stdio
from .upstreams import UpstreamConfig, UpstreamManager

__all__ = ["attach_to_runtime", "run_stdio_cli", "upstream_configs"]


def upstream_configs(settings: Settings) -> list[UpstreamConfig]:
    return [UpstreamConfig.model_validate(u) for u in settings.upstreams]


def _secret_resolver(settings: Settings) -> Any:
    if not settings.secrets:
        return None
    from adapters.credentials.secrets import SecretResolver

    resolver = SecretResolver(settings.secrets)
    return lambda name: resolver.resolve(name).reveal()


def _transport_security(settings: Settings) -> TransportSecuritySettings | None:
    if not settings.allowed_hosts:
        return None
    hosts = [f"127.0.0.1:{settings.port}", f"localhost:{settings.port}", *settings.allowed_hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=[f"http://{h}" for h in hosts]
                                     + [f"https://{h}" for h in hosts])


async def attach_to_runtime(runtime: Any) -> None:
    """Give the runtime an `/mcp` app and a lifespan that keeps the upstream connections."""
    settings: Settings = runtime.settings
    upstreams = UpstreamManager(upstream_configs(settings),
                                secret_resolver=_secret_resolver(settings),
                                clock=runtime.gateway.clock)
    server = build_mcp_server(runtime.gateway, upstreams)
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    app, mcp_lifespan = mcp_http_app(server, runtime.gateway, resource_url=base.rstrip("/") + "/mcp",
                                     transport_security=_transport_security(settings))

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with upstreams:
            server.jitgate.register_upstream_capabilities(server)  # type: ignore[attr-defined]
            async with mcp_lifespan():
                yield

    runtime.extras["mcp"] = (app, lifespan)
    runtime.extras["upstreams"] = upstreams
    if runtime.services is not None:
        from .pinning import repin_current

        async def repin(admin: Any, tool: str) -> str:
            return await repin_current(runtime.gateway, upstreams, admin, tool)

        runtime.services.repin = repin


async def run_stdio_cli(settings: Settings) -> int:
    """`jitgate mcp`: authenticate the key from the environment, then serve over stdio (where
    it is authenticated again on every request)."""
    from adapters.compose import build_runtime

    key = os.environ.get(KEY_ENV, "")
    runtime = await build_runtime(settings)
    try:
        from adapters.compose import settle_heap

        settle_heap()
        principal = await runtime.gateway.authenticate(key)
        if principal is None:
            print(f"jitgate mcp: set {KEY_ENV} to a valid agent key", file=sys.stderr)
            return 2
        upstreams: UpstreamManager = runtime.extras["upstreams"]
        async with upstreams:
            await serve_stdio(runtime.gateway, upstreams, principal,
                              os.environ.get(GRANT_ENV) or None, key=key)
        return 0
    finally:
        await runtime.close()
