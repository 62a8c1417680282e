"""`jitgate mcp` over stdio end to end: the real CLI process, a Python SDK stdio client and the
MCP Inspector CLI, fronting real upstreams with the real gateway (sqlite data dir)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from adapters.compose import build_runtime
from gateway.config import Settings
from gateway.grants import GrantRequest
from mcp_live import policy_files
from mcp_peers import ROOT, filesystem, peers, time_server
from tests.conftest import service_missing

pytestmark = peers
JITGATE = ROOT / ".venv" / "bin" / "jitgate"
PEERS = ROOT / "tests" / "peers"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A data dir with an agent key (made by `jitgate keys create`), a config with upstreams,
    and an active grant to read under the sandbox's work dir."""
    if not os.access(JITGATE, os.X_OK):
        service_missing("the jitgate console script in .venv")
    base = tmp_path_factory.mktemp("stdio")
    sandbox, data = base / "sandbox", base / "data"
    (sandbox / "work").mkdir(parents=True)
    (sandbox / "work" / "notes.txt").write_text("inside")
    (sandbox / "secret.txt").write_text("TOP-SECRET-BYTES")
    config = base / "jitgate.yaml"
    config.write_text(yaml.safe_dump({
        "policy_files": policy_files(),
        "upstreams": [filesystem(sandbox).model_dump(exclude_none=True),
                      time_server().model_dump(exclude_none=True)]}))
    out = anyio.run(lambda: anyio.run_process(
        [str(JITGATE), "keys", "create", "--role", "agent", "--name", "stdio-agent",
         "--data-dir", str(data)]))
    key = out.stdout.decode().strip().splitlines()[-1]

    async def grant() -> str:
        runtime = await build_runtime(Settings(data_dir=data, policy_files=policy_files()))
        try:
            principal = await runtime.gateway.authenticate(key)
            assert principal is not None
            g = await runtime.gateway.request_grant(principal, GrantRequest(
                objective="read my notes",
                scope=[{"tool": "fs.read_text_file",
                        "args": {"path": {"path_under": str(sandbox / "work")}}}],
                ttl_s=600))
            return g.grant_id
        finally:
            await runtime.close()

    grant_id = anyio.run(grant)
    return {"data": data, "config": config, "key": key, "grant": grant_id, "sandbox": sandbox}


def _argv(s: dict[str, Any]) -> list[str]:
    return ["mcp", "--data-dir", str(s["data"]), "--config", str(s["config"])]


async def _decisions(s: dict[str, Any]) -> list[dict[str, Any]]:
    runtime = await build_runtime(Settings(data_dir=s["data"], policy_files=policy_files()))
    try:
        principal = await runtime.gateway.authenticate(s["key"])
        return await runtime.gateway.decisions_for_grant(principal, s["grant"])
    finally:
        await runtime.close()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_python_sdk_over_stdio(setup: dict[str, Any], mode: str) -> None:
    s = setup
    params = StdioServerParameters(command=str(JITGATE), args=_argv(s),
                                   env={"JITGATE_AGENT_KEY": s["key"],
                                        "JITGATE_GRANT_ID": s["grant"]})
    async with Client(stdio_client(params), mode=mode, read_timeout_seconds=60) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"fs.read_text_file", "jitgate_request_grant"} <= names
        assert "fs.write_file" not in names
        ok = await c.call_tool("fs.read_text_file",
                               {"path": str(s["sandbox"] / "work" / "notes.txt")})
        assert not ok.is_error and ok.content[0].text == "inside"
        out = await c.call_tool("fs.read_text_file", {"path": str(s["sandbox"] / "secret.txt")})
        assert out.is_error and out.structured_content["code"] == "argument_out_of_scope"
        assert "TOP-SECRET-BYTES" not in out.content[0].text
        t = await c.call_tool("time.get_current_time", {"timezone": "UTC"})
        assert t.is_error and t.structured_content["code"] == "tool_not_in_scope"
    codes = [d["code"] for d in await _decisions(s)]
    assert codes[-3:] == ["allowed", "argument_out_of_scope", "tool_not_in_scope"]


async def test_bad_key_refuses_to_start(setup: dict[str, Any]) -> None:
    proc = await anyio.run_process([str(JITGATE), *_argv(setup)], check=False,
                                   env={**os.environ, "JITGATE_AGENT_KEY": "jgk_nope_nope"})
    assert proc.returncode == 2
    assert b"JITGATE_AGENT_KEY" in proc.stderr and b"jgk_nope" not in proc.stderr


async def test_inspector_cli_over_stdio(setup: dict[str, Any]) -> None:
    npx = shutil.which("npx")
    if npx is None or not (PEERS / "node_modules/@modelcontextprotocol/inspector").is_dir():
        service_missing("npx and the MCP Inspector (run scripts/install_peers.sh)")
    s = setup
    base = [npx or "npx", "--no-install", "@modelcontextprotocol/inspector", "--cli",
            "-e", f"JITGATE_AGENT_KEY={s['key']}", "-e", f"JITGATE_GRANT_ID={s['grant']}",
            "--", str(JITGATE), *_argv(s)]
    listed = await anyio.run_process([*base, "--method", "tools/list"], cwd=PEERS, check=False)
    assert listed.returncode == 0, listed.stderr.decode()[-2000:]
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert "fs.read_text_file" in names and "jitgate_request_grant" in names
    path = s["sandbox"] / "work" / "notes.txt"
    called = await anyio.run_process(
        [*base, "--method", "tools/call", "--tool-name", "fs.read_text_file",
         "--tool-arg", f"path={path}"], cwd=PEERS, check=False)
    assert called.returncode == 0, called.stderr.decode()[-2000:]
    result = json.loads(called.stdout)
    assert result["content"][0]["text"] == "inside" and not result.get("isError")


async def test_a_key_disabled_while_serving_is_refused(setup: dict[str, Any]) -> None:
    """The stdio key is authenticated again on every request, not only at start."""
    from mcp.shared.exceptions import MCPError

    from gateway.keys import KEY_RECHECK_S

    s = setup
    data = str(s["data"])
    out = await anyio.run_process([str(JITGATE), "keys", "create", "--role", "agent",
                                   "--name", "soon-disabled", "--data-dir", data])
    key = out.stdout.decode().strip().splitlines()[-1]
    params = StdioServerParameters(command=str(JITGATE), args=_argv(s),
                                   env={"JITGATE_AGENT_KEY": key})
    async with Client(stdio_client(params), mode="legacy", read_timeout_seconds=60) as c:
        assert "jitgate_request_grant" in {t.name for t in (await c.list_tools()).tools}
        await anyio.run_process([str(JITGATE), "keys", "disable", key.split("_")[1],
                                 "--data-dir", data])
        await anyio.sleep(KEY_RECHECK_S + 0.3)  # the server re-reads a cached key this often
        for request in (c.list_tools,
                        lambda: c.call_tool("fs.read_text_file",
                                            {"path": str(s["sandbox"] / "work" / "notes.txt")})):
            with pytest.raises(MCPError) as err:
                await request()
            assert err.value.message.startswith("unauthenticated")
            assert key not in err.value.message and err.value.data is None
