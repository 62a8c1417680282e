"""`jitgate mcp`: the gateway as an MCP server over stdio, for one principal.

The agent key comes from the environment (read by the CLI), and the grant from
`JITGATE_GRANT_ID`; the CLI authenticates the key and calls `serve_stdio`, which authenticates
it again on every request, so a key disabled while the server runs stops working.
"""

from __future__ import annotations

from typing import Any

from mcp.server.stdio import stdio_server

from gateway.model import Principal

from .server import NOTIFICATION_OPTIONS, GatewayPort, build_mcp_server
from .upstreams import UpstreamManager

__all__ = ["serve_stdio", "GRANT_ENV", "KEY_ENV"]

GRANT_ENV = "JITGATE_GRANT_ID"
KEY_ENV = "JITGATE_AGENT_KEY"


async def serve_stdio(gateway: GatewayPort, upstreams: UpstreamManager, principal: Principal,
                      grant_id: str | None = None, *, key: str | None = None,
                      **server_kw: Any) -> None:
    """Serve until stdin closes. `upstreams` must already be entered (`async with`). With
    `key`, each request is made as whoever the key authenticates as then (none: refused)."""
    server = build_mcp_server(gateway, upstreams, principal=None if key else principal,
                              grant_id=grant_id, key=key, **server_kw)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options(NOTIFICATION_OPTIONS))
