"""Request bodies the pipeline cannot hold are refused at the edge with a stable 4xx code:
JSON beyond what canonical JSON and the audit trail accept, and bodies over the size limit
(on every route, the introspection form included), against a real server."""

from __future__ import annotations

import socket

import httpx2
import pytest

from adapters.http.errors import MAX_JSON_DEPTH
from tests.support.live import start_live_gateway

LIMIT = 1_048_576  # the default max_body_bytes


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    gw = start_live_gateway(tmp_path_factory.mktemp("body") / "d", drift_enabled=True)
    yield gw
    gw.stop()


def client(live, who: str) -> httpx2.Client:
    return httpx2.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.keys[who]}"},
                         timeout=30)


@pytest.fixture(scope="module")
def decided(live) -> dict[str, str]:
    agent = client(live, "agent")
    g = agent.post("/v1/grants", json={"objective": "read", "scope": [{"tool": "fs.read_file"}],
                                       "ttl_s": 3600}).json()
    d = agent.post("/v1/authorize", json={"grant_id": g["grant_id"], "tool": "fs.read_file",
                                          "arguments": {"path": "/a"}}).json()
    assert d["effect"] == "allow", d
    return {"grant_id": g["grant_id"], "decision_id": d["decision_id"]}


def _audit_count(live) -> int:
    return len(client(live, "reviewer").get("/v1/audit?limit=1000").json()["records"])


def _nest(n: int) -> bytes:
    return b"[" * n + b"]" * n


# Each value is put where a caller controls JSON: call arguments, a scope condition, an output.
BAD_VALUES = {
    "nested_200k": _nest(200_000),
    "nested_past_the_limit": _nest(MAX_JSON_DEPTH + 1),
    "nan": b"NaN",
    "infinity": b"Infinity",
    "minus_infinity": b"-Infinity",
    "overflow_to_inf": b"1e400",
    "huge_integer": b"9" * 400,
    "lone_low_surrogate": b'"\\udc00"',
    "lone_high_surrogate": b'"\\ud800"',
}


def _bodies(ids: dict[str, str], value: bytes) -> dict[str, bytes]:
    gid = ids["grant_id"].encode()
    return {
        "/v1/authorize": b'{"grant_id":"%s","tool":"fs.read_file","arguments":{"path":"/a","x":%s}}'
                         % (gid, value),
        "/v1/grants": b'{"objective":"o","scope":[{"tool":"fs.read_file","args":{"path":{"eq":%s}}}],'
                      b'"ttl_s":60}' % value,
        "/v1/decisions/{decision_id}/result": b'{"ok":true,"output":{"v":%s}}' % value,
    }


@pytest.mark.parametrize("route", ["/v1/authorize", "/v1/grants", "/v1/decisions/{decision_id}/result"])
@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_json_the_pipeline_cannot_hold_is_a_400_malformed_json(live, decided, route, name):
    agent = client(live, "agent")
    before = _audit_count(live)
    raw = _bodies(decided, BAD_VALUES[name])[route]
    r = agent.post(route.format(**decided), content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "malformed_json" and err["message"], err
    assert "Traceback" not in r.text
    assert _audit_count(live) == before  # nothing reached the pipeline
    # and the gateway still serves the next call normally
    ok = agent.post("/v1/authorize", json={"grant_id": decided["grant_id"], "tool": "fs.read_file",
                                           "arguments": {"path": "/b"}}).json()
    assert ok["effect"] == "allow", ok


def test_json_nested_up_to_the_limit_is_served(live, decided):
    agent = client(live, "agent")
    # the body's own levels: {} arguments{} -> the value starts at depth 3
    r = agent.post("/v1/authorize", content=b'{"grant_id":"%s","tool":"fs.read_file","arguments":'
                   b'{"path":"/a","x":%s}}' % (decided["grant_id"].encode(), _nest(MAX_JSON_DEPTH - 2)),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["effect"] == "allow", r.text
    g = agent.post("/v1/grants", content=b'{"objective":"o","scope":[{"tool":"fs.read_file","args":'
                   b'{"path":{"eq":%s}}}],"ttl_s":60}' % _nest(MAX_JSON_DEPTH - 5),
                   headers={"Content-Type": "application/json"})
    assert g.status_code == 201, g.text
    out = agent.post(f"/v1/decisions/{r.json()['decision_id']}/result",
                     content=b'{"ok":true,"output":{"v":%s}}' % _nest(MAX_JSON_DEPTH - 2),
                     headers={"Content-Type": "application/json"})
    assert out.status_code == 200, out.text


def _post_unfinished_chunked(live, path: str, ctype: str, total: int) -> tuple[int, str]:
    """POST `total` bytes in chunks and never send the last chunk: only a server that enforces
    the limit while streaming can answer (one that buffers the body waits for its end)."""
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Authorization: Bearer {live.keys['agent']}\r\nContent-Type: {ctype}\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"token=" + b"a" * 8186
        sent = 0
        while sent < total:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except TimeoutError:
            pytest.fail(f"no answer before the end of the body (got {data[:200]!r})")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode("utf-8", "replace")


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "application/json"])
def test_introspect_refuses_a_body_over_the_limit_while_streaming(live, ctype):
    status, body = _post_unfinished_chunked(live, "/v1/introspect", ctype, LIMIT + 16_384)
    assert status == 413, body
    assert '"code":"body_too_large"' in body.replace(" ", "")


def test_introspect_form_within_the_limit_still_works(live):
    r = client(live, "agent").post("/v1/introspect", data={"token": "not-a-token"})
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    empty = client(live, "agent").post("/v1/introspect", data={"other": "x"})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_request"
