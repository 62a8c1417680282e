"""A tiny MCP upstream for the end-to-end tests (run as a script, stdio or streamable HTTP).

    python fixture_server.py stdio
    python fixture_server.py http PORT        # requires `Authorization: Bearer $FIXTURE_TOKEN`

The `echo` tool's description is read from the file named by FIXTURE_DESC_FILE at start, so a
test can change the tool's definition between runs. `die` exits the process mid-call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

__all__ = ["build"]


def _description() -> str:
    path = os.environ.get("FIXTURE_DESC_FILE")
    if path and Path(path).exists():
        return Path(path).read_text("utf-8").strip()
    return "Echo the text back."


def build() -> MCPServer:
    server = MCPServer("fixture")

    @server.tool(name="echo", description=_description())
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(name="pid", description="The process id of this server.")
    def pid() -> str:
        return str(os.getpid())

    @server.tool(name="die", description="Exit the server in the middle of the call.")
    def die() -> str:
        sys.stdout.flush()
        os._exit(3)

    @server.tool(name="write", description="Pretend to write something.")
    def write(text: str) -> str:
        return f"wrote {len(text)} chars"

    return server


def _require_token(app: Any, token: str) -> Any:
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"bad token"})
            return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    server = build()
    if sys.argv[1:2] == ["http"]:
        import uvicorn

        port = int(sys.argv[2])
        app = server.streamable_http_app()
        uvicorn.run(_require_token(app, os.environ["FIXTURE_TOKEN"]), host="127.0.0.1", port=port,
                    log_level="warning")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
