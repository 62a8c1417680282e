"""The Agents SDK with JITGate as its MCP server over stdio (`jitgate mcp`), fronting the real
filesystem server: the allowed read runs, the refused one reaches the model as tool output, the
run goes on, and the trail has one decision per call."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import yaml
from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI

from adapters.openai_agents import jitgate_mcp_stdio
from demos.fake_model import call, say, tool_outputs
from tests.support.services import service_missing

set_tracing_disabled(True)
ROOT = Path(__file__).resolve().parents[2]
FILESYSTEM = ROOT / "tests" / "peers" / "node_modules" / ".bin" / "mcp-server-filesystem"
JITGATE = ROOT / ".venv" / "bin" / "jitgate"


def _jitgate(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "adapters.cli", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout


def _policy(tmp_path: Path) -> Path:
    pack = tmp_path / "fs-openai.yaml"
    pack.write_text(yaml.safe_dump({
        "version": 1, "name": "fs-openai",
        "tools": [{"match": "fs__read_*", "tier": "low", "effect": "read"},
                  {"match": "fs__list_*", "tier": "low", "effect": "read"}],
        "roles": {"agent": {"max_tier": "low", "baseline": [],
                            "ceiling": [{"tool": "fs__read_text_file"}]}}}))
    return pack


async def test_agents_sdk_through_jitgate_mcp_over_stdio(tmp_path, fake_model):
    if not FILESYSTEM.exists():
        service_missing("npm peers (scripts/install_peers.sh)")
    model, base_url = fake_model
    sandbox = tmp_path / "sandbox"
    (sandbox / "docs").mkdir(parents=True)
    (sandbox / "docs" / "intro.md").write_text("JITGate authorizes every tool call.")
    (sandbox / "secret.txt").write_text("not for agents")
    data = tmp_path / "data"
    config = tmp_path / "jitgate.yaml"
    # "__" keeps the tool names valid OpenAI function names ([A-Za-z0-9_-]); the policy names
    # tools by their public names, so this test brings its own small pack
    config.write_text(yaml.safe_dump({
        "upstreams": [{"name": "fs", "transport": "stdio", "command": str(FILESYSTEM),
                       "args": [str(sandbox)], "separator": "__"}],
        "policy_files": [str(_policy(tmp_path))]}))
    key = _jitgate("keys", "create", "--role", "agent", "--name", "coder",
                   "--data-dir", str(data)).strip().splitlines()[-1]

    from adapters.compose import build_runtime
    from gateway.config import load_settings
    from gateway.grants import GrantRequest

    runtime = await build_runtime(load_settings(config, data_dir=data))
    try:
        principal = await runtime.gateway.authenticate(key)
        grant = await runtime.gateway.request_grant(principal, GrantRequest(
            f"Summarise the docs under {sandbox / 'docs'}",
            [{"tool": "fs__read_text_file", "args": {"path": {"path_under": str(sandbox / "docs")}}}],
            600))
    finally:
        await runtime.close()

    model.script("fake", [
        call("fs__read_text_file", path=str(sandbox / "docs" / "intro.md")),
        call("fs__read_text_file", path=str(sandbox / "secret.txt")),
        say("done"),
    ])
    server = jitgate_mcp_stdio(key, grant.grant_id, command=str(JITGATE),
                               args=["mcp", "--data-dir", str(data), "--config", str(config)],
                               cache_tools_list=True)
    async with server:
        agent = Agent(name="reader", instructions="Read the docs.", mcp_servers=[server],
                      model=OpenAIChatCompletionsModel(
                          model="fake", openai_client=AsyncOpenAI(base_url=base_url, api_key="t",
                                                                  max_retries=0)))
        result = await asyncio.wait_for(Runner.run(agent, "summarise"), 120)
    assert result.final_output == "done"
    outputs = tool_outputs(model.requests[-1])
    assert any("JITGate authorizes every tool call." in o for o in outputs)
    assert any("argument_out_of_scope" in o for o in outputs)
    names = [t["function"]["name"] for t in model.requests[0].get("tools", [])]
    assert "fs__read_text_file" in names
    assert all(__import__("re").fullmatch(r"[A-Za-z0-9_-]{1,64}", n) for n in names), names
    assert not any("not for agents" in o for o in outputs)

    runtime = await build_runtime(load_settings(config, data_dir=data))
    try:
        reviewer_log = await runtime.gateway.audit.read(grant_id=grant.grant_id, limit=100)
    finally:
        await runtime.close()
    decided = [r.data["code"] for r in reviewer_log if r.type == "call.decided"]
    assert decided == ["allowed", "argument_out_of_scope"]
