"""JITGate's MCP server end to end against the REAL gateway (sqlite store, default policy pack):
real upstreams, Python SDK clients in both eras, the TypeScript SDK client, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx2
import pytest

from mcp_live import (api, assert_allowed_calls_audited, audit, fixture, live_mcp, mcp_client,
                      principal_of, result_code)
from mcp_peers import ROOT, everything, filesystem, peers, time_server
from tests.conftest import service_missing
from tests.support.live import LiveGateway

pytestmark = peers


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fsroot")
    work = base / "work"
    work.mkdir()
    (work / "notes.txt").write_text("inside")
    (base / "secret.txt").write_text("TOP-SECRET-BYTES")
    return base


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sandbox: Path) -> Iterator[LiveGateway]:
    ups = [filesystem(sandbox), everything(), time_server(), fixture()]
    with live_mcp(tmp_path_factory.mktemp("gw"), ups) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _fresh_window(live: LiveGateway) -> None:
    """Each test starts past the previous one's retry back-off and rate windows."""
    live.clock.advance(120)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_filesystem_grant_scenario(live: LiveGateway, sandbox: Path, mode: str) -> None:
    root = sandbox / "work"
    async with mcp_client(live, "agent", mode=mode) as c:
        assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        tools = (await c.list_tools()).tools
        names = {t.name for t in tools}
        # before any grant: the agent's baseline (fs.list_directory) and our own tools
        assert "fs.list_directory" in names and "jitgate_request_grant" in names
        assert "fs.read_text_file" not in names and "every.echo" not in names
        req = next(t for t in tools if t.name == "jitgate_request_grant")
        assert "fs.write_file" in req.description  # the role's ceiling is described

        denied = await c.call_tool("fs.read_text_file", {"path": str(root / "notes.txt")})
        assert denied.is_error and result_code(denied) == "no_grant"
        assert "jitgate_request_grant" in denied.content[0].text

        res = await c.call_tool("jitgate_request_grant", {
            "objective": f"summarise my notes under {root} into {root / 'summary.md'}",
            "scope": [{"tool": "fs.read_text_file", "args": {"path": {"path_under": str(root)}}},
                      {"tool": "fs.list_directory", "args": {"path": {"path_under": str(root)}}}],
            "ttl_s": 600})
        assert not res.is_error, res.content[0].text
        grant_id = res.structured_content["grant"]["grant_id"]
        assert res.structured_content["grant"]["status"] == "active"  # low tier: auto

        names = {t.name for t in (await c.list_tools()).tools}
        assert "fs.read_text_file" in names and "fs.write_file" not in names

        ok = await c.call_tool("fs.read_text_file", {"path": str(root / "notes.txt")})
        assert not ok.is_error and ok.content[0].text == "inside"
        # the upstream's _meta never leaks
        assert (ok.meta or {}).get("io.modelcontextprotocol/serverInfo", {}).get(
            "name", "jitgate") == "jitgate"
        listing = await c.call_tool("fs.list_directory", {"path": str(root)})
        assert not listing.is_error and "notes.txt" in listing.content[0].text

        out = await c.call_tool("fs.read_text_file", {"path": str(sandbox / "secret.txt")})
        assert out.is_error and result_code(out) == "argument_out_of_scope"
        assert out.structured_content["decision_id"].startswith("dec_")
        assert "TOP-SECRET-BYTES" not in out.content[0].text

        # (a path the objective names: otherwise the provenance detector adds its signal)
        write = await c.call_tool("fs.write_file", {"path": str(root / "summary.md"),
                                                    "content": "y"})
        assert write.is_error and result_code(write) == "tool_not_in_scope", write.content[0].text
        assert not (root / "summary.md").exists()

        status = await c.call_tool("jitgate_grant_status", {})
        assert status.structured_content["grant"]["status"] == "active"
        released = await c.call_tool("jitgate_release_grant", {})
        assert released.structured_content["grant"]["status"] == "revoked"

    # the audit trail over the HTTP API shows each decision with its reasons
    r = await api(live, "agent", "GET", f"/v1/grants/{grant_id}/decisions")
    assert r.status_code == 200, r.text
    rows = r.json()["decisions"]
    assert [d["code"] for d in rows] == ["allowed", "allowed", "argument_out_of_scope",
                                         "tool_not_in_scope"]
    assert all(d["reasons"] for d in rows)
    assert rows[2]["tool"] == "fs.read_text_file" and rows[3]["tool"] == "fs.write_file"
    assert all(d["agent_id"] == principal_of(live, "agent").id for d in rows)
    # the refused write's content is redacted by the devtools pack, never stored in clear
    assert rows[3]["arguments"]["content"] != "y"
    assert_allowed_calls_audited(live)
    # each allowed call had its own lease, bound to it; JITGate forwarded the call over its own
    # connection, so no bearer token was signed (kind `gateway`), and none outlived the grant
    leases = live.run(live.runtime.gateway.leases_for_grant(principal_of(live, "agent"),
                                                            grant_id))
    assert sorted(l.decision_id for l in leases) == sorted(d["decision_id"] for d in rows[:2])
    assert all(l.kind == "gateway" and l.revoked and l.expires_at > l.issued_at for l in leases)


async def test_typescript_sdk_client(live: LiveGateway, sandbox: Path) -> None:
    script = ROOT / "tests" / "peers" / "ts_client.mjs"
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/peers/node_modules/@modelcontextprotocol/sdk").is_dir():
        service_missing("node and the npm peers (run scripts/install_peers.sh)")
    root = sandbox / "work"
    r = await api(live, "agent", "POST", "/v1/grants", {
        "objective": "read notes",
        "scope": [{"tool": "fs.read_text_file", "args": {"path": {"path_under": str(root)}}}],
        "ttl_s": 600})
    assert r.status_code in (200, 201), r.text
    grant_id = r.json()["grant_id"]
    outputs = []
    for path in (root / "notes.txt", sandbox / "secret.txt"):
        proc = await anyio.run_process(
            [node or "node", str(script), f"{live.url}/mcp", live.keys["agent"], grant_id,
             "fs.read_text_file", json.dumps({"path": str(path)})],
            check=False, env={**os.environ})
        assert proc.returncode == 0, proc.stderr.decode()
        outputs.append(json.loads(proc.stdout.decode().strip().splitlines()[-1]))
    ok, refused = outputs
    assert "fs.read_text_file" in ok["tools"] and "jitgate_request_grant" in ok["tools"]
    assert ok["result"]["content"][0]["text"] == "inside"
    assert refused["result"]["isError"] is True
    assert refused["result"]["structuredContent"]["code"] == "argument_out_of_scope"
    rows = (await api(live, "agent", "GET", f"/v1/grants/{grant_id}/decisions")).json()
    assert [d["code"] for d in rows["decisions"]] == ["allowed", "argument_out_of_scope"]


async def test_bad_input_is_refused_and_audited(live: LiveGateway) -> None:
    r = await api(live, "tester", "POST", "/v1/grants", {
        "objective": "echo and fixture things",
        "scope": [{"tool": "every.*"}, {"tool": "fix.echo"}, {"tool": "fix.die"}],
        "ttl_s": 600})
    assert r.status_code in (200, 201), r.text
    grant_id = r.json()["grant_id"]
    async with mcp_client(live, "tester", grant_id=grant_id) as c:
        ok = await c.call_tool("every.echo", {"message": "hi"})
        assert not ok.is_error and ok.content[0].text == "Echo: hi"

        unknown = await c.call_tool("every.nope", {"x": 1})
        assert unknown.is_error and result_code(unknown) == "unknown_tool"
        no_ns = await c.call_tool("nope", {})
        assert result_code(no_ns) == "unknown_tool"

        bad = await c.call_tool("every.echo", {"message": 42})
        assert bad.is_error and result_code(bad) == "invalid_arguments"
        assert "42" not in bad.content[0].text  # the schema error names paths, not values

        # an upstream that dies in the middle of an allowed call
        died = await c.call_tool("fix.die", {})
        assert died.is_error and result_code(died) == "upstream_unavailable"
        assert died.structured_content["decision_id"].startswith("dec_")
        up = live.runtime.extras["upstreams"].upstreams["fix"]
        assert live.run(up.wait_up(20))  # the supervisor brings it back
        again = await c.call_tool("fix.echo", {"text": "back"})
        assert not again.is_error and again.content[0].text == "echo: back"

    decided = {r.decision_id: r.data for r in audit(live, grant_id=grant_id)
               if r.type == "call.decided"}
    by_code = {d["code"]: d for d in decided.values()}
    for code in ("unknown_tool", "invalid_arguments"):
        assert by_code[code]["effect"] == "deny" and by_code[code]["reasons"], code
    assert by_code["unknown_tool"]["rule_ids"] == ["edge"]
    completed = {r.decision_id: r.data for r in audit(live, grant_id=grant_id)
                 if r.type == "call.completed"}
    died_id = died.structured_content["decision_id"]
    assert decided[died_id]["effect"] == "allow"
    assert completed[died_id]["ok"] is False and completed[died_id]["error"] == "upstream_unavailable"
    assert_allowed_calls_audited(live)


async def test_down_upstream_refusal_is_audited(live: LiveGateway) -> None:
    """A call to a tool whose upstream is down is refused before policy, and audited."""
    ups = live.runtime.extras["upstreams"]
    up = ups.upstreams["fix"]
    assert live.run(up.wait_up(20))
    client = up._client
    up._mark_broken()  # as if the connection had just dropped
    try:
        async with mcp_client(live, "tester") as c:
            res = await c.call_tool("fix.echo", {"text": "x"})
    finally:
        assert live.run(up.wait_up(20))
    assert client is not None
    assert res.is_error and result_code(res) == "upstream_unavailable"
    rec = [r for r in audit(live, decision_id=res.structured_content["decision_id"])]
    assert [r.type for r in rec] == ["call.decided"]
    assert rec[0].data["code"] == "upstream_unavailable" and rec[0].data["effect"] == "deny"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic abc"}])
async def test_missing_or_bad_bearer_gets_401(live: LiveGateway, headers: dict) -> None:
    async with httpx2.AsyncClient(headers=headers) as http:
        r = await http.post(f"{live.url}/mcp",
                            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                            headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401
    assert "resource_metadata" in r.headers["www-authenticate"]
    meta = r.headers["www-authenticate"].split('resource_metadata="', 1)[1].split('"', 1)[0]
    async with httpx2.AsyncClient() as http:
        doc = (await http.get(meta)).json()
    assert doc["resource"].endswith("/mcp")


async def test_resources_and_prompts_are_forwarded(live: LiveGateway) -> None:
    async with mcp_client(live, "tester") as c:
        prompts = await c.list_prompts()
        assert any(p.name.startswith("every.") for p in prompts.prompts)
        resources = await c.list_resources()
        assert resources.resources


async def _pending_grant(live: LiveGateway) -> str:
    r = await api(live, "tester", "POST", "/v1/grants", {
        "objective": "write a note with the fixture", "scope": [{"tool": "fix.write"}],
        "ttl_s": 600, "justification": "the test needs a privileged grant"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["status"] == "pending"
    return r.json()["grant_id"]


async def _visible(c: Any) -> set[str]:
    return {t.name for t in (await c.list_tools()).tools}


async def test_list_changed_on_approval_and_revocation_legacy(live: LiveGateway) -> None:
    grant_id = await _pending_grant(live)
    changed = anyio.Event()
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", "") == "notifications/tools/list_changed":
            seen.append(root.method)
            changed.set()

    async with mcp_client(live, "tester", mode="legacy", grant_id=grant_id,
                          message_handler=on_message) as c:
        assert "fix.write" not in await _visible(c)  # pending: not listed
        r = await api(live, "reviewer", "POST", f"/v1/grants/{grant_id}/approve", {"note": "ok"})
        assert r.status_code == 200, r.text
        with anyio.fail_after(10):
            await changed.wait()
        assert "fix.write" in await _visible(c)
        ok = await c.call_tool("fix.write", {"text": "hello"})
        assert not ok.is_error and ok.content[0].text == "wrote 5 chars"

        changed = anyio.Event()
        r = await api(live, "reviewer", "POST", f"/v1/grants/{grant_id}/revoke",
                      {"reason": "task over"})
        assert r.status_code == 200, r.text
        with anyio.fail_after(10):
            await changed.wait()
        assert "fix.write" not in await _visible(c)
        refused = await c.call_tool("fix.write", {"text": "again"})
        assert result_code(refused) == "grant_revoked"
    assert len(seen) >= 2


async def test_list_changed_on_approval_and_revocation_modern(live: LiveGateway) -> None:
    grant_id = await _pending_grant(live)
    async with mcp_client(live, "tester", mode="auto", grant_id=grant_id) as c:
        assert c.protocol_version == "2026-07-28"
        assert "fix.write" not in await _visible(c)
        async with c.listen(tools_list_changed=True) as sub:
            events = sub.__aiter__()
            r = await api(live, "reviewer", "POST", f"/v1/grants/{grant_id}/approve", {})
            assert r.status_code == 200, r.text
            with anyio.fail_after(10):
                await events.__anext__()
            assert "fix.write" in await _visible(c)
            r = await api(live, "reviewer", "POST", f"/v1/grants/{grant_id}/revoke",
                          {"reason": "task over"})
            assert r.status_code == 200, r.text
            with anyio.fail_after(10):
                await events.__anext__()
            assert "fix.write" not in await _visible(c)
