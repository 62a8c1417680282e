"""Faults at the MCP edge end to end (the real gateway, sqlite store): upstreams we wrote to
misbehave (faulty_server.py, malformed_server.py) beside our fixture upstream. Every tools/call
must end as an audited decision, with no exception text, upstream secret or stack trace
reaching the client, in both protocol eras."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from adapters.mcp.upstreams import UpstreamConfig
from gateway.ports import StoreUnavailable
from mcp_live import api, audit, fixture, live_mcp, mcp_client, result_code
from tests.support.live import LiveGateway

HERE = Path(__file__).resolve().parent
SECRET = "S3CRET"  # in every error faulty_server.py answers with
WEB_TOOLS = ["web.echo", "web.slow", "web.boom", "web.badre", "web.badtype", "web.bigint"]


def faulty(name: str = "web", *, timeout_s: float = 30.0, **env: str) -> UpstreamConfig:
    return UpstreamConfig(name=name, transport="stdio", command=sys.executable,
                          args=[str(HERE / "faulty_server.py")], env=env, timeout_s=timeout_s)


def malformed(name: str = "every") -> UpstreamConfig:
    return UpstreamConfig(name=name, transport="stdio", command=sys.executable,
                          args=[str(HERE / "malformed_server.py")], timeout_s=5)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with live_mcp(tmp_path_factory.mktemp("gw"),
                  [faulty(timeout_s=1.5), fixture()]) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _fresh_window(live: LiveGateway) -> None:
    live.clock.advance(120)


def _leaks(res: Any) -> bool:
    text = " ".join(getattr(c, "text", "") for c in res.content)
    return SECRET in text or SECRET in str(res.structured_content) or "Traceback" in text


async def _grant(live: LiveGateway, tools: list[str]) -> str:
    r = await api(live, "tester", "POST", "/v1/grants", {
        "objective": "exercise the faulty upstream", "ttl_s": 600,
        "scope": [{"tool": name} for name in tools]})
    assert r.status_code in (200, 201), r.text
    return r.json()["grant_id"]


def _decided(live: LiveGateway, decision_id: str) -> dict[str, Any]:
    recs = audit(live, decision_id=decision_id)
    return {r.type: r.data for r in recs}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_schema_that_cannot_be_checked_is_an_audited_denial(live: LiveGateway,
                                                                    mode: str) -> None:
    grant_id = await _grant(live, WEB_TOOLS)
    async with mcp_client(live, "tester", mode=mode, grant_id=grant_id) as c:
        for tool in ("web.badre", "web.badtype"):
            res = await c.call_tool(tool, {"p": "value-xyz"})
            assert res.is_error and result_code(res) == "invalid_arguments", res
            assert "cannot be checked" in res.content[0].text
            assert "value-xyz" not in res.content[0].text
            rec = _decided(live, res.structured_content["decision_id"])
            assert rec["call.decided"]["code"] == "invalid_arguments"
        # a schema RFC 8785 cannot encode (a bound beyond 2**53) is pinned and checked
        ok = await c.call_tool("web.bigint", {"n": 1})
        assert not ok.is_error and ok.content[0].text == "bigint ok"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_failing_pin_check_is_an_audited_refusal(live: LiveGateway, mode: str) -> None:
    grant_id = await _grant(live, ["web.echo"])
    store = live.runtime.gateway.tool_pins._store
    async with mcp_client(live, "tester", mode=mode, grant_id=grant_id) as c:
        assert not (await c.call_tool("web.echo", {"text": "a"})).is_error
        for failure, code in [(StoreUnavailable("the SQLite writer failed"), "store_unavailable"),
                              (RuntimeError(f"pin store exploded {SECRET}"), "internal_error")]:
            live.clock.advance(10)  # past the edge's cache of confirmed pins

            async def broken(tool: str, failure: Exception = failure) -> str | None:
                raise failure

            store.get = broken
            try:
                res = await c.call_tool("web.echo", {"text": "b"})
            finally:
                del store.get
            assert res.is_error and result_code(res) == code, res
            assert not _leaks(res) and "SQLite" not in res.content[0].text
            rec = _decided(live, res.structured_content["decision_id"])
            assert rec["call.decided"]["code"] == code
            assert rec["call.decided"]["effect"] == "deny"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_upstream_errors_and_timeouts_are_audited_refusals(live: LiveGateway,
                                                                 mode: str) -> None:
    grant_id = await _grant(live, WEB_TOOLS)
    async with mcp_client(live, "tester", mode=mode, grant_id=grant_id) as c:
        boom = await c.call_tool("web.boom", {})
        assert boom.is_error and result_code(boom) == "upstream_error", boom
        assert not _leaks(boom) and "-32099" in boom.content[0].text
        start = time.monotonic()
        slow = await c.call_tool("web.slow", {"s": 10})  # the upstream times out after 1.5 s
        assert time.monotonic() - start < 8
        assert slow.is_error and result_code(slow) == "upstream_unavailable", slow
        assert "timed out" in slow.content[0].text
    boom_rec = _decided(live, boom.structured_content["decision_id"])
    slow_rec = _decided(live, slow.structured_content["decision_id"])
    assert boom_rec["call.decided"]["effect"] == slow_rec["call.decided"]["effect"] == "allow"
    assert boom_rec["call.completed"]["error"] == "upstream_error:-32099"
    assert slow_rec["call.completed"]["error"] == "upstream_unavailable"


async def test_upstream_errors_on_prompts_and_resources_do_not_leak(live: LiveGateway) -> None:
    async with mcp_client(live, "tester", mode="legacy") as c:
        assert any(r.uri == "faulty://boom" for r in (await c.list_resources()).resources)
        for action in (lambda: c.get_prompt("web.boom"),
                       lambda: c.read_resource("faulty://boom")):
            with pytest.raises(MCPError) as err:
                await action()
            assert err.value.code == -32099
            assert SECRET not in err.value.message and err.value.data is None


async def test_a_non_conformant_upstream_breaks_nothing_else(tmp_path: Path) -> None:
    with live_mcp(tmp_path, [malformed(), fixture()]) as live:
        live.clock.advance(1)
        grant_id = await _grant(live, ["every.echo", "fix.echo"])
        async with mcp_client(live, "tester", grant_id=grant_id) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert "fix.echo" in names and "every.echo" not in names
            res = await c.call_tool("every.echo", {})
            assert res.is_error and result_code(res) == "upstream_unavailable", res
            assert "invalid answer" in res.content[0].text
            rec = _decided(live, res.structured_content["decision_id"])
            assert rec["call.decided"]["code"] == "upstream_unavailable"
            ok = await c.call_tool("fix.echo", {"text": "x"})
            assert not ok.is_error


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_cancelled_call_is_recorded_and_its_lease_released(live: LiveGateway,
                                                                   mode: str) -> None:
    grant_id = await _grant(live, ["web.slow"])
    async with mcp_client(live, "tester", mode=mode, grant_id=grant_id) as c:
        with anyio.move_on_after(0.5):
            await c.call_tool("web.slow", {"s": 30})
        decided: list[Any] = []
        with anyio.fail_after(10):
            while True:
                recs = audit(live, grant_id=grant_id)
                decided = [r for r in recs if r.type == "call.decided"]
                done = {r.decision_id: r.data for r in recs if r.type == "call.completed"}
                if decided and decided[-1].decision_id in done:
                    break
                await anyio.sleep(0.1)
    decision_id = decided[-1].decision_id
    assert done[decision_id]["error"] == "cancelled" and done[decision_id]["ok"] is False
    leases = live.run(live.runtime.gateway.leases.list_for_grant(grant_id))
    assert [lease.revoked for lease in leases if lease.decision_id == decision_id] == [True]


async def test_a_hung_tools_list_does_not_hold_up_every_listing(tmp_path: Path) -> None:
    with live_mcp(tmp_path, [faulty("time", timeout_s=1.0, FAULTY_MODE="hang_list"),
                             fixture()]) as live:
        live.clock.advance(1)
        async with mcp_client(live, "tester", mode="legacy") as c:
            timings = []
            for _ in range(3):
                start = time.monotonic()
                names = {t.name for t in (await c.list_tools()).tools}
                timings.append(time.monotonic() - start)
                assert "jitgate_request_grant" in names and "time.echo" not in names
            assert timings[1] < 0.5 and timings[2] < 0.5, timings  # the first waited 1 s
            start = time.monotonic()
            res = await c.call_tool("time.echo", {"text": "x"})
            assert time.monotonic() - start < 0.5
            assert res.is_error and result_code(res) == "upstream_unavailable", res
            assert res.structured_content["decision_id"].startswith("dec_")
