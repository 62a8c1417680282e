"""Streamable HTTP for the MCP server, with bearer auth (agent key or workload JWT).

`mcp_http_app` returns the ASGI app to mount (it serves `/mcp` and the RFC 9728 metadata at
`/.well-known/oauth-protected-resource/mcp`) and a lifespan factory the host app must enter,
because a mounted sub-app's lifespan never runs.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Callable

from mcp.server import Server
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from .auth import GatewayTokenVerifier, MCP_SCOPE

__all__ = ["mcp_http_app"]


def mcp_http_app(server: Server, gateway: Any, *, resource_url: str,
                 issuer_url: str | None = None,
                 transport_security: TransportSecuritySettings | None = None,
                 path: str = "/mcp", stateless: bool = False,
                 ) -> tuple[ASGIApp, Callable[[], contextlib.AbstractAsyncContextManager[None]]]:
    """`resource_url` is the public URL of the endpoint, e.g. `https://gw.example/mcp`."""
    base = resource_url[: -len(path)] if resource_url.endswith(path) else resource_url
    auth = AuthSettings(issuer_url=issuer_url or base, resource_server_url=resource_url,
                        required_scopes=[MCP_SCOPE], validate_token_resource=False)
    app = server.streamable_http_app(streamable_http_path=path, stateless_http=stateless,
                                     auth=auth, token_verifier=GatewayTokenVerifier(gateway),
                                     transport_security=transport_security)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with server.session_manager.run():
            yield

    return app, lifespan
