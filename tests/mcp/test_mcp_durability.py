"""Over MCP, the decision's fsync overlaps the upstream call; if it fails, the client gets a
refusal (`audit_unavailable`), never the upstream's result."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_live import api, fixture, live_mcp, mcp_client
from mcp_peers import peers
from tests.support.wal_faults import install_wal_faults

pytestmark = peers


async def test_result_is_withheld_when_the_decision_cannot_be_made_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    faults = install_wal_faults(monkeypatch, tmp_path / "gw" / "jitgate.db")
    with live_mcp(tmp_path / "gw", [fixture()]) as live:
        r = await api(live, "tester", "POST", "/v1/grants", {
            "objective": "echo things", "scope": [{"tool": "fix.echo"}], "ttl_s": 600})
        assert r.status_code in (200, 201), r.text
        async with mcp_client(live, "tester", grant_id=r.json()["grant_id"]) as c:
            ok = await c.call_tool("fix.echo", {"text": "first"})
            assert not ok.is_error and ok.content[0].text == "echo: first"

            faults.fail()
            res = await c.call_tool("fix.echo", {"text": "second"})
            assert res.is_error and res.structured_content["code"] == "audit_unavailable"
            assert "second" not in res.content[0].text
            again = await c.call_tool("fix.echo", {"text": "third"})
            assert again.is_error and again.structured_content["code"] == "audit_unavailable"
