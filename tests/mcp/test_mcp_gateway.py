"""JITGate's MCP server end to end: real upstreams, real Python SDK client, both eras."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import AsyncIterator

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.routing import Mount

from adapters.mcp.endpoint import mcp_http_app
from adapters.mcp.server import build_mcp_server
from adapters.mcp.upstreams import UpstreamManager
from mcp_fakes import AGENT, FakeGateway
from mcp_peers import everything, filesystem, peers, time_server

pytestmark = peers
KEY = "jg_test_agent_key"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def gateway_http(tmp_path: Path) -> AsyncIterator[tuple[str, FakeGateway, Path]]:
    root = tmp_path / "work"
    root.mkdir()
    (root / "notes.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    gw = FakeGateway(keys={KEY: AGENT})
    async with UpstreamManager([filesystem(tmp_path), everything(), time_server()]) as ups:
        server = build_mcp_server(gw, ups)
        port = _port()
        url = f"http://127.0.0.1:{port}/mcp"
        app, lifespan = mcp_http_app(server, gw, resource_url=url)

        @contextlib.asynccontextmanager
        async def host_lifespan(_app):  # type: ignore[no-untyped-def]
            async with lifespan():
                yield

        host = Starlette(routes=[Mount("/", app=app)], lifespan=host_lifespan)
        srv = uvicorn.Server(uvicorn.Config(host, host="127.0.0.1", port=port, log_level="error",
                                            lifespan="on"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(srv.serve)
            while not srv.started:
                await anyio.sleep(0.01)
            try:
                yield url, gw, root
            finally:
                srv.should_exit = True


@contextlib.asynccontextmanager
async def client(url: str, mode: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode,
                          cache=None) as c:
            yield c


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_filesystem_grant_scenario(tmp_path: Path, mode: str) -> None:
    async with gateway_http(tmp_path) as (url, gw, root):
        auth = {"Authorization": f"Bearer {KEY}"}
        async with client(url, mode, auth) as c:
            assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
            names = {t.name for t in (await c.list_tools()).tools}
            # baseline (time.*) and our own tools only, before any grant
            assert "time.get_current_time" in names and "jitgate_request_grant" in names
            assert "fs.read_text_file" not in names
            req = next(t for t in (await c.list_tools()).tools if t.name == "jitgate_request_grant")
            assert "fs.write_file" in req.description  # the ceiling is described

            denied = await c.call_tool("fs.read_text_file", {"path": str(root / "notes.txt")})
            assert denied.is_error and denied.structured_content["code"] == "no_grant"
            assert "jitgate_request_grant" in denied.content[0].text

            res = await c.call_tool("jitgate_request_grant", {
                "objective": "summarise my notes",
                "scope": [{"tool": "fs.read_text_file",
                           "args": {"path": {"prefix": str(root) + "/"}}}],
                "ttl_s": 600})
            assert not res.is_error, res.content[0].text
            grant_id = res.structured_content["grant"]["grant_id"]

            names = {t.name for t in (await c.list_tools()).tools}
            assert "fs.read_text_file" in names and "fs.write_file" not in names

            ok = await c.call_tool("fs.read_text_file", {"path": str(root / "notes.txt")})
            assert not ok.is_error and ok.content[0].text == "inside"
            # the upstream's _meta never leaks: only our own stamp, if any
            assert (ok.meta or {}).get("io.modelcontextprotocol/serverInfo", {}).get(
                "name", "jitgate") == "jitgate"

            out = await c.call_tool("fs.read_text_file", {"path": str(tmp_path / "secret.txt")})
            assert out.is_error and out.structured_content["code"] == "argument_out_of_scope"
            assert out.structured_content["decision_id"].startswith("dec_")

            write = await c.call_tool("fs.write_file", {"path": str(root / "x"), "content": "y"})
            assert write.structured_content["code"] == "tool_not_in_scope"
            assert not (root / "x").exists()

            bad = await c.call_tool("fs.read_text_file", {"path": 42})
            assert bad.structured_content["code"] == "invalid_arguments"
            unknown = await c.call_tool("fs.nope", {})
            assert unknown.structured_content["code"] == "unknown_tool"

            status = await c.call_tool("jitgate_grant_status", {})
            assert status.structured_content["grant"]["status"] == "active"
            released = await c.call_tool("jitgate_release_grant", {})
            assert released.structured_content["grant"]["status"] == "revoked"
            again = await c.call_tool("fs.read_text_file", {"path": str(root / "notes.txt")})
            assert again.is_error

        decided = [e for e in gw.audit if e["type"] == "call.decided"]
        assert [e["code"] for e in decided] == ["no_grant", "allowed", "argument_out_of_scope",
                                                "tool_not_in_scope", "invalid_arguments",
                                                "no_grant"]
        assert all(e["reasons"] for e in decided)
        assert decided[1]["annotations"]["read_only"] is True
        allowed = {e["decision_id"] for e in decided if e["code"] == "allowed"}
        completed = {e["decision_id"] for e in gw.audit if e["type"] == "call.completed"}
        assert allowed == completed  # no allowed call goes unaudited


async def test_out_of_band_grant_header_and_review(tmp_path: Path) -> None:
    async with gateway_http(tmp_path) as (url, gw, root):
        from gateway.grants import GrantRequest
        g = await gw.request_grant(AGENT, GrantRequest("echo things", [{"tool": "every.*"}], 60))
        gw.review_tools.add("every.get-sum")
        headers = {"Authorization": f"Bearer {KEY}", "X-JITGate-Grant": g.grant_id}
        async with client(url, "auto", headers) as c:
            res = await c.call_tool("every.echo", {"message": "hi"})
            assert res.content[0].text == "Echo: hi"
            rev = await c.call_tool("every.get-sum", {"a": 1, "b": 2})
            assert rev.is_error and rev.structured_content["code"] == "review_required"
            apr = rev.structured_content["approval_id"]
            assert f"/v1/approvals/{apr}/approve" in rev.content[0].text
            # resources and prompts are forwarded, names of prompts namespaced
            prompts = await c.list_prompts()
            assert any(p.name.startswith("every.") for p in prompts.prompts)
            resources = await c.list_resources()
            assert resources.resources


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_missing_or_bad_credentials_get_401(tmp_path: Path, headers: dict) -> None:
    async with gateway_http(tmp_path) as (url, _gw, _root):
        async with httpx2.AsyncClient(headers=headers) as http:
            r = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                headers={"Accept": "application/json, text/event-stream"})
        assert r.status_code == 401
        assert "resource_metadata" in r.headers["www-authenticate"]


async def test_typescript_sdk_client(tmp_path: Path) -> None:
    import json
    import os
    import shutil

    from mcp_peers import ROOT

    script = ROOT / "tests" / "peers" / "ts_client.mjs"
    if not (ROOT / "tests/peers/node_modules/@modelcontextprotocol/sdk").is_dir():
        from conftest import service_missing
        service_missing("npm peers (run scripts/install_peers.sh)")
    async with gateway_http(tmp_path) as (url, gw, root):
        from gateway.grants import GrantRequest
        g = await gw.request_grant(AGENT, GrantRequest(
            "read notes", [{"tool": "fs.read_text_file",
                            "args": {"path": {"prefix": str(root) + "/"}}}], 60))
        outputs = []
        for path in (root / "notes.txt", tmp_path / "secret.txt"):
            proc = await anyio.run_process(
                [shutil.which("node") or "node", str(script), url, KEY, g.grant_id,
                 "fs.read_text_file", json.dumps({"path": str(path)})],
                check=False, env={**os.environ})
            assert proc.returncode == 0, proc.stderr.decode()
            outputs.append(json.loads(proc.stdout.decode().strip().splitlines()[-1]))
        ok, refused = outputs
        assert "fs.read_text_file" in ok["tools"] and "jitgate_request_grant" in ok["tools"]
        assert ok["result"]["content"][0]["text"] == "inside"
        assert refused["result"]["isError"] is True
        assert refused["result"]["structuredContent"]["code"] == "argument_out_of_scope"
