"""The acceptance path through the HTTP API with a plain HTTP client against a real server."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import httpx2
import pytest

from tests.support.live import start_live_gateway

READ_DOCS = [{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}]


@pytest.fixture
def live(tmp_path):
    gw = start_live_gateway(tmp_path / "data", drift_enabled=False)
    yield gw
    gw.stop()


def client(live, who: str) -> httpx2.Client:
    return httpx2.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.keys[who]}"},
                         timeout=30)


def test_grants_and_decisions_over_http(live):
    agent, reviewer = client(live, "agent"), client(live, "reviewer")
    r = agent.post("/v1/grants", json={"objective": "summarise the docs", "scope": READ_DOCS, "ttl_s": 600})
    assert r.status_code == 201, r.text
    low = r.json()
    assert low["status"] == "active" and low["expires_at"] > 0

    r = agent.post("/v1/grants", json={"objective": "fix a typo", "ttl_s": 600, "scope": [
        {"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace/docs"}}}]})
    priv = r.json()
    assert r.status_code == 201 and priv["status"] == "pending"

    allow = agent.post("/v1/authorize", json={"grant_id": low["grant_id"], "tool": "fs.read_file",
                                              "arguments": {"path": "/workspace/docs/a.md"}}).json()
    assert allow["effect"] == "allow" and allow["code"] == "allowed" and allow["decision_id"]
    assert allow["credential"]["token"].count(".") == 2 and allow["reasons"]

    deny = agent.post("/v1/authorize", json={"grant_id": low["grant_id"], "tool": "fs.read_file",
                                             "arguments": {"path": "/etc/shadow"}}).json()
    assert (deny["effect"], deny["code"]) == ("deny", "argument_out_of_scope")
    assert "credential" not in deny

    pending = agent.post("/v1/authorize", json={"grant_id": priv["grant_id"], "tool": "fs.write_file",
                                                "arguments": {"path": "/workspace/docs/a.md", "content": "x"}}).json()
    assert pending["code"] == "grant_pending"
    assert agent.post(f"/v1/grants/{priv['grant_id']}/approve").json()["error"]["code"] == "forbidden"
    approved = reviewer.post(f"/v1/grants/{priv['grant_id']}/approve", json={"note": "ok"})
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    live.clock.advance(30)  # the reviewer took a while
    again = agent.post("/v1/authorize", json={"grant_id": priv["grant_id"], "tool": "fs.write_file",
                                              "arguments": {"path": "/workspace/docs/a.md", "content": "x"}}).json()
    assert again["effect"] == "allow"

    result = agent.post(f"/v1/decisions/{allow['decision_id']}/result", json={"ok": True, "output": {"text": "hi"}})
    assert result.status_code == 200

    revoked = reviewer.post(f"/v1/grants/{low['grant_id']}/revoke", json={"reason": "done"})
    assert revoked.json()["status"] == "revoked"
    after = agent.post("/v1/authorize", json={"grant_id": low["grant_id"], "tool": "fs.read_file",
                                              "arguments": {"path": "/workspace/docs/a.md"}}).json()
    assert after["code"] == "grant_revoked"

    short = agent.post("/v1/grants", json={"objective": "quick look", "scope": READ_DOCS, "ttl_s": 30}).json()
    live.clock.advance(31)
    expired = agent.post("/v1/authorize", json={"grant_id": short["grant_id"], "tool": "fs.read_file",
                                                "arguments": {"path": "/workspace/docs/a.md"}}).json()
    assert expired["code"] == "grant_expired" and expired["code"] != after["code"]

    other = client(live, "agent2")
    assert other.get(f"/v1/grants/{priv['grant_id']}").status_code == 404
    assert [g["grant_id"] for g in other.get("/v1/grants").json()["grants"]] == []

    log = reviewer.get(f"/v1/grants/{low['grant_id']}/decisions").json()["decisions"]
    assert [d["code"] for d in log] == ["allowed", "argument_out_of_scope", "grant_revoked"]
    verify = reviewer.get("/v1/audit/verify").json()
    assert verify["ok"] is True


def test_break_glass_refuses_a_single_approver(live):
    ops, r1, r2 = client(live, "maintainer"), client(live, "reviewer"), client(live, "reviewer2")
    body = {"objective": "restart the stuck worker", "ttl_s": 120,
            "scope": [{"tool": "shell.run", "args": {"command": {"max_len": 100}}}]}
    assert ops.post("/v1/grants", json=body).json()["error"]["code"] == "justification_required"
    g = ops.post("/v1/grants", json={**body, "justification": "INC-7 outage"}).json()
    assert g["status"] == "pending" and g["break_glass"] is True
    assert r1.post(f"/v1/grants/{g['grant_id']}/approve").json()["status"] == "pending"
    second = r1.post(f"/v1/grants/{g['grant_id']}/approve")
    assert second.status_code == 409 and second.json()["error"]["code"] == "already_approved"
    call = {"grant_id": g["grant_id"], "tool": "shell.run", "arguments": {"command": "systemctl restart w"}}
    assert ops.post("/v1/authorize", json=call).json()["code"] == "grant_pending"
    assert r2.post(f"/v1/grants/{g['grant_id']}/approve").json()["status"] == "active"
    assert ops.post("/v1/authorize", json=call).json()["effect"] == "allow"


@pytest.mark.parametrize("kwargs, status, code", [
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "malformed_json"),
    ({"json": {"tool": "fs.read_file", "arguments": {}, "surprise": 1}}, 422, "unknown_field"),
    ({"json": {"tool": 42, "arguments": {}}}, 422, "invalid_request"),
    ({"json": [1, 2]}, 422, "invalid_request"),
    ({"content": b"{" + b" " * 2_000_000 + b"}", "headers": {"Content-Type": "application/json"}}, 413, "body_too_large"),
    ({"content": b"tool=x", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
])
def test_bad_input_gets_a_4xx_with_a_code(live, kwargs, status, code):
    r = client(live, "agent").post("/v1/authorize", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert "Traceback" not in r.text


@pytest.mark.parametrize("who, path", [("agent", "/v1/grants?status=bogus"),
                                       ("reviewer", "/v1/approvals?status=bogus")])
def test_an_unknown_status_filter_is_a_422_not_an_empty_list(live, who, path):
    r = client(live, who).get(path)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert "must be one of" in r.json()["error"]["message"]


def test_bad_credentials_are_refused(live):
    anon = httpx2.Client(base_url=live.url, timeout=30)
    r = anon.post("/v1/authorize", json={"tool": "fs.read_file", "arguments": {}})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    bad = httpx2.Client(base_url=live.url, headers={"Authorization": "Bearer jgk_0123456789abcdef_nope"})
    r = bad.get("/v1/grants")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    assert anon.get("/v1/nothing-here").json()["error"]["code"] == "not_found"
    assert anon.get("/v1/authorize").status_code == 405


def test_openapi_describes_every_route(live):
    doc = httpx2.get(live.url + "/openapi.json").json()
    for path in ["/v1/grants", "/v1/grants/{grant_id}", "/v1/grants/{grant_id}/{action}", "/v1/authorize",
                 "/v1/decisions/{decision_id}/result", "/v1/audit", "/v1/audit/verify", "/healthz",
                 "/.well-known/jwks.json", "/v1/introspect"]:
        assert path in doc["paths"], path
    assert "GrantBody" in doc["components"]["schemas"]
    assert httpx2.get(live.url + "/healthz").json()["status"] == "ok"


def _tamper(db, sql: str) -> None:
    con = sqlite3.connect(db)
    con.execute(sql)
    con.commit()
    con.close()


def test_audit_verify_cli_names_a_tampered_record(tmp_path):
    live = start_live_gateway(tmp_path / "d", drift_enabled=False)
    try:
        agent = client(live, "agent")
        g = agent.post("/v1/grants", json={"objective": "read", "scope": READ_DOCS, "ttl_s": 600}).json()
        for i in range(5):
            agent.post("/v1/authorize", json={"grant_id": g["grant_id"], "tool": "fs.read_file",
                                              "arguments": {"path": f"/workspace/docs/{i}"}})
    finally:
        live.stop()
    data = str(tmp_path / "d")
    cli = [sys.executable, "-m", "adapters.cli", "audit", "verify", "--data-dir", data]
    ok = subprocess.run(cli, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    db = tmp_path / "d" / "jitgate.db"
    _tamper(db, "UPDATE audit_records SET data = replace(data, 'allow', 'deny') WHERE seq = 4")
    bad = subprocess.run(cli, capture_output=True, text=True)
    assert bad.returncode != 0 and "record 4: modified" in bad.stdout, bad.stdout
