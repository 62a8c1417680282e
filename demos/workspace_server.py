"""The demo's upstream MCP servers (stdio): a workspace file server and an outbound HTTP tool.

`python -m demos.workspace_server files ROOT` serves read_file / list_directory / write_file
under ROOT; `python -m demos.workspace_server http LOGFILE` serves `post`, which never touches
the network: it appends what would have been sent to LOGFILE, so the demo can show that
nothing left.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp.server import MCPServer

__all__ = ["files_server", "http_server", "main"]


def _inside(root: Path, path: str) -> Path:
    """`/workspace/...` (the path the agent sees) mapped into ROOT; nothing outside it."""
    relative = path.removeprefix("/workspace").lstrip("/")
    target = (root / relative).resolve()
    if root != target and root not in target.parents:
        raise ValueError("path outside the workspace")
    return target


def files_server(root: Path) -> MCPServer:
    server = MCPServer("workspace-files")

    @server.tool()
    def read_file(path: str) -> str:
        """Read a text file of the workspace."""
        return _inside(root, path).read_text()

    @server.tool()
    def list_directory(path: str) -> list[str]:
        """List a directory of the workspace."""
        return sorted(p.name for p in _inside(root, path).iterdir())

    @server.tool()
    def write_file(path: str, content: str) -> str:
        """Write a text file of the workspace."""
        _inside(root, path).write_text(content)
        return f"wrote {len(content)} bytes to {path}"

    return server


def http_server(log: Path) -> MCPServer:
    server = MCPServer("outbound-http")

    @server.tool()
    def post(url: str, body: str) -> str:
        """POST a body to a URL."""
        with log.open("a") as f:
            f.write(json.dumps({"url": url, "body": body}) + "\n")
        return "202 Accepted"

    return server


def main(argv: list[str]) -> int:
    kind, where = argv[1], Path(argv[2]).resolve()
    (files_server(where) if kind == "files" else http_server(where)).run("stdio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
