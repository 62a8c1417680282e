"""The dashboard's lists against a real gateway: a pending grant stays in view however many
newer grants there are."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2

from tests.support.live import start_live_gateway


def test_a_pending_grant_is_listed_behind_a_hundred_newer_grants(tmp_path: Path):
    live = start_live_gateway(tmp_path / "d", drift_enabled=False)
    try:
        agent = httpx2.Client(base_url=live.url, timeout=30,
                              headers={"Authorization": f"Bearer {live.keys['agent']}"})
        pending = agent.post("/v1/grants", json={"objective": "fix a typo", "ttl_s": 600,
                                                 "scope": [{"tool": "fs.write_file"}]}).json()
        assert pending["status"] == "pending"
        for i in range(101):  # low risk: active at once, each newer than the pending one
            live.clock.advance(0.01)
            g = agent.post("/v1/grants", json={"objective": f"read {i}", "ttl_s": 600,
                                               "scope": [{"tool": "fs.read_file"}]}).json()
            assert g["status"] == "active", g
        with httpx2.Client(base_url=live.url, cookies={"jitgate_ui": live.keys["reviewer"]},
                           timeout=30) as ui:
            page = ui.get("/ui")
        assert page.status_code == 200, page.text
        assert re.search(r"Pending grants \((\d+)\)", page.text).group(1) == "1"
        assert f'/ui/grants/{pending["grant_id"]}/approve' in page.text
    finally:
        live.stop()
