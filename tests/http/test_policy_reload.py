"""Reloading the policy: atomic, audited, admin only; an invalid set keeps the one in force."""

from __future__ import annotations

import httpx2

from policies.loader import default_pack_paths
from tests.support.live import start_live_gateway


def test_admin_reloads_the_policy_and_a_broken_file_changes_nothing(tmp_path):
    files = []
    for path in default_pack_paths():
        copy = tmp_path / path.name
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        files.append(str(copy))
    live = start_live_gateway(tmp_path / "d", drift_enabled=False, policy_files=files)
    try:
        admin = httpx2.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.keys['admin']}"})
        agent = httpx2.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.keys['agent']}"})
        before = httpx2.get(live.url + "/healthz").json()["policy_revision"]
        assert agent.post("/v1/policy/reload").json()["error"]["code"] == "forbidden"

        devtools = tmp_path / "devtools.yaml"
        devtools.write_text(devtools.read_text().replace(
            "{match: fs.write_file, tier: privileged", "{match: fs.write_file, tier: low"))
        r = admin.post("/v1/policy/reload")
        assert r.status_code == 200 and r.json()["changed"] is True, r.text
        after = httpx2.get(live.url + "/healthz").json()["policy_revision"]
        assert after == r.json()["revision"] != before
        g = agent.post("/v1/grants", json={"objective": "write docs", "ttl_s": 300, "scope": [
            {"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace/docs"}}}]}).json()
        assert g["status"] == "active" and g["policy_revision"] == after  # now low tier

        devtools.write_text(devtools.read_text() + "\nrules:\n  - id: broken\n    effect: maybe\n")
        bad = admin.post("/v1/policy/reload")
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_policy"
        assert bad.json()["error"]["details"]["problems"]
        assert httpx2.get(live.url + "/healthz").json()["policy_revision"] == after
        audit = admin.get("/v1/audit", params={"limit": 1000}).json()["records"]
        loaded = [x for x in audit if x["type"] == "policy.loaded"]
        assert loaded[-1]["data"]["revision"] == after and loaded[-1]["data"]["previous"] == before
    finally:
        live.stop()
