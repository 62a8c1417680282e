"""Where the real MCP peers live (installed by scripts/install_peers.sh) and their configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.mcp.upstreams import UpstreamConfig
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = ROOT / "tests" / "peers" / "node_modules" / ".bin"
PEER_VENV_BIN = ROOT / ".peers-venv" / "bin"

FILESYSTEM = NODE_BIN / "mcp-server-filesystem"
EVERYTHING = NODE_BIN / "mcp-server-everything"
TIME = PEER_VENV_BIN / "mcp-server-time"


def require(*paths: Path) -> None:
    for p in paths:
        if not os.access(p, os.X_OK):
            service_missing(f"MCP peer {p.name} (run scripts/install_peers.sh)")


def filesystem(root: Path, name: str = "fs") -> UpstreamConfig:
    require(FILESYSTEM)
    return UpstreamConfig(name=name, transport="stdio", command=str(FILESYSTEM), args=[str(root)])


def everything(name: str = "every") -> UpstreamConfig:
    require(EVERYTHING)
    return UpstreamConfig(name=name, transport="stdio", command=str(EVERYTHING), args=["stdio"])


def time_server(name: str = "time") -> UpstreamConfig:
    require(TIME)
    return UpstreamConfig(name=name, transport="stdio", command=str(TIME),
                          args=["--local-timezone", "UTC"])


peers = pytest.mark.peers
