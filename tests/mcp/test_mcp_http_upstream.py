"""Streamable-HTTP upstreams behind the real gateway: server-everything (`streamableHttp`) and
the fixture server, whose bearer token is a gateway secret injected into the upstream's headers.
The secret never reaches tool results, errors or the audit trail."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

from adapters.mcp.upstreams import UpstreamConfig
from mcp_live import FIXTURE, api, assert_allowed_calls_audited, audit, live_mcp, mcp_client
from mcp_peers import EVERYTHING, peers, require
from tests.support.live import LiveGateway, free_port

pytestmark = peers
TOKEN = "fixture-token-s3cr3t-7f9c2a"


def _wait_port(port: int, proc: subprocess.Popen, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"upstream exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # waiting for a child process to listen, not for time logic
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def http_upstreams() -> Iterator[dict[str, int]]:
    require(EVERYTHING)
    ports = {"every": free_port(), "fix": free_port()}
    procs = [
        subprocess.Popen([str(EVERYTHING), "streamableHttp"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL,
                         env={**os.environ, "PORT": str(ports["every"])}),
        subprocess.Popen([sys.executable, str(FIXTURE), "http", str(ports["fix"])],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "FIXTURE_TOKEN": TOKEN}),
    ]
    try:
        _wait_port(ports["every"], procs[0])
        _wait_port(ports["fix"], procs[1])
        yield ports
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, http_upstreams: dict[str, int]
         ) -> Iterator[LiveGateway]:
    base = tmp_path_factory.mktemp("httpup")
    secret_file = base / "fixture-token"
    secret_file.write_text(TOKEN)
    ups = [
        UpstreamConfig(name="every", transport="http",
                       url=f"http://127.0.0.1:{http_upstreams['every']}/mcp"),
        UpstreamConfig(name="fix", transport="http",
                       url=f"http://127.0.0.1:{http_upstreams['fix']}/mcp",
                       headers={"Authorization": "Bearer ${secret:fixture_token}"}),
        # same server, a secret that does not resolve: the upstream stays down, nothing leaks
        UpstreamConfig(name="web", transport="http",
                       url=f"http://127.0.0.1:{http_upstreams['fix']}/mcp",
                       headers={"Authorization": "Bearer ${secret:missing_token}"}),
    ]
    with live_mcp(base / "gw", ups, secrets={"fixture_token": {"file": str(secret_file)},
                                             "missing_token": {"env": "JITGATE_TEST_NO_SUCH_VAR"}}
                  ) as gw:
        yield gw


def _dump(obj: Any) -> str:
    return json.dumps(obj, default=str)


async def test_http_upstreams_with_injected_secret(live: LiveGateway) -> None:
    r = await api(live, "tester", "POST", "/v1/grants", {
        "objective": "echo through HTTP upstreams",
        "scope": [{"tool": "every.echo"}, {"tool": "fix.echo"}, {"tool": "web.echo"}],
        "ttl_s": 600})
    assert r.status_code in (200, 201), r.text
    grant_id = r.json()["grant_id"]
    ups = live.runtime.extras["upstreams"].upstreams
    assert ups["every"].is_up and ups["fix"].is_up and not ups["web"].is_up
    texts = []
    for mode in ("auto", "legacy"):
        async with mcp_client(live, "tester", mode=mode, grant_id=grant_id) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"every.echo", "fix.echo"} <= names and "web.echo" not in names
            echo = await c.call_tool("every.echo", {"message": "over http"})
            assert not echo.is_error and echo.content[0].text == "Echo: over http"
            fix = await c.call_tool("fix.echo", {"text": "with a secret"})
            # the fixture answers only with the right bearer: the secret was injected
            assert not fix.is_error and fix.content[0].text == "echo: with a secret"
            down = await c.call_tool("web.echo", {"text": "x"})
            assert down.is_error and down.structured_content["code"] == "upstream_unavailable"
            texts += [_dump(res.model_dump()) for res in (echo, fix, down)]
    assert ups["every"]._client.protocol_version == "2025-11-25"
    assert ups["fix"]._client.protocol_version == "2026-07-28"
    assert all(TOKEN not in t for t in texts)
    records = audit(live)
    assert records and all(TOKEN not in _dump(r.as_dict()) for r in records)
    decisions = (await api(live, "tester", "GET", f"/v1/grants/{grant_id}/decisions")).text
    assert TOKEN not in decisions and "fix.echo" in decisions
    assert_allowed_calls_audited(live)
