"""`jitgate keys rotate` end to end: rotate on the data dir with the CLI (a subprocess), restart
the gateway on it, and check the published keys and the tokens on both sides of the rotation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx2
from cred_gateway_support import POLICIES, client, request_grant

from adapters.credentials import CallTokenVerifier
from adapters.credentials.keyring import ROTATION_LEEWAY_S
from adapters.credentials.verifier import parse_token
from gateway.clock import FakeClock
from tests.support.live import start_live_gateway

ARGS = {"order": "o-1", "amount": 10}
POLICY = str(POLICIES / "http_tools.yaml")
MAX_TTL = 300


def token_for(live, arguments: dict = ARGS) -> str:
    agent = client(live, "agent")
    gid = request_grant(agent)
    out = agent.post("/v1/authorize", json={"tool": "billing.fail", "grant_id": gid,
                                            "arguments": arguments}).json()
    assert out["effect"] == "allow", out
    return out["credential"]["token"]


def kids(live) -> list[str]:
    return sorted(k["kid"] for k in httpx2.get(f"{live.url}/.well-known/jwks.json").json()["keys"])


def verify(live, token: str, arguments: dict = ARGS) -> str:
    async def run() -> str:
        verifier = CallTokenVerifier(f"{live.url}/.well-known/jwks.json", audience="billing",
                                     issuer="jitgate", clock=live.clock)
        return (await verifier.verify(token, tool="billing.fail", arguments=arguments)).kid

    return asyncio.run(run())


def test_rotation_keeps_old_tokens_valid_until_they_expire(tmp_path):
    data = tmp_path / "data"
    # the CLI rotates on the system clock, so the gateway's fake clock starts at the real time
    clock = FakeClock(time.time())
    first = start_live_gateway(data, policy_files=[POLICY], drift_enabled=False, clock=clock)
    try:
        old_kids = kids(first)
        old_token = token_for(first)
    finally:
        first.stop()
    assert len(old_kids) == 1 and parse_token(old_token).kid == old_kids[0]

    out = subprocess.run([sys.executable, "-m", "adapters.cli", "keys", "rotate", "--data-dir",
                          str(data), "--max-token-ttl", str(MAX_TTL)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rotated_by = time.time()
    new_kid = out.stdout.split("new signing key ", 1)[1].split(";", 1)[0]
    assert new_kid != old_kids[0] and old_kids[0] in out.stdout

    second = start_live_gateway(data, policy_files=[POLICY], drift_enabled=False, clock=clock)
    try:
        assert kids(second) == sorted([old_kids[0], new_kid])
        assert verify(second, old_token) == old_kids[0]  # issued before, verified after
        new_token = token_for(second, {"order": "o-2", "amount": 2})
        assert parse_token(new_token).kid == new_kid
        assert verify(second, new_token, {"order": "o-2", "amount": 2}) == new_kid
        # the retired key is published until every token it signed has expired, then dropped
        clock.set(rotated_by + MAX_TTL + ROTATION_LEEWAY_S + 1)
        assert kids(second) == [new_kid]
    finally:
        second.stop()
