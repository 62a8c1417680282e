"""HTTP tools through the real gateway (POST /v1/calls), and the secret-leak test.

A real tool (Starlette + CallTokenMiddleware, uvicorn on 127.0.0.1) verifies the call token
against the live gateway's JWKS; the gateway injects the tool's API key from a secret file.
"""

from __future__ import annotations

import base64
import logging
import secrets
import subprocess
import sys

import httpx2
import pytest
from cred_gateway_support import POLICIES, Seen, ToolServer, billing_tool_app, client, dead_url
from cred_gateway_support import request_grant

from adapters.compose import memory_runtime
from adapters.credentials import CallTokenIssuer, CallTokenVerifier, Keyring
from adapters.credentials.http_tool import HttpToolForwarder, HttpToolSpec
from adapters.credentials.verifier import parse_token
from gateway.clock import FakeClock
from gateway.digest import args_digest
from gateway.errors import GatewayError
from gateway.model import Principal, Role, ToolCall
from gateway.ports import MintRequest
from policies.loader import load_policy_files
from tests.support.live import start_live_gateway

ARGS = {"order": "o-1", "amount": 10}
POLICY = str(POLICIES / "http_tools.yaml")
KEY = {"secret": "billing_key", "kind": "api_key"}


@pytest.fixture
def world(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "sk-live-" + secrets.token_urlsafe(24)
    (tmp_path / "billing_key").write_text(secret + "\n")
    tool = ToolServer()
    http_tools = [
        {"name": "billing.refund", "url": f"{tool.url}/refund", "audience": "billing"},
        {"name": "billing.fail", "url": f"{tool.url}/fail", "audience": "billing", "inject": KEY},
        {"name": "billing.echo64", "url": f"{tool.url}/echo64", "audience": "billing",
         "inject": KEY},
        {"name": "billing.down", "url": dead_url(), "audience": "billing", "inject": KEY},
    ]
    live = start_live_gateway(tmp_path / "data", policy_files=[POLICY], http_tools=http_tools,
                              secrets={"billing_key": {"file": str(tmp_path / "billing_key")}},
                              drift_enabled=False)
    seen = Seen()
    verifier = CallTokenVerifier(f"{live.url}/.well-known/jwks.json", audience="billing",
                                 issuer="jitgate", clock=live.clock)
    tool.start(billing_tool_app(verifier, seen))
    yield live, tool, seen, secret
    tool.stop()
    live.stop()


def test_an_allowed_call_reaches_the_tool_with_its_token_and_secret(world):
    live, tool, seen, secret = world
    agent = client(live, "agent")
    gid = request_grant(agent, "billing.refund", {"amount": {"le": 100}})

    r = agent.post("/v1/calls", json={"tool": "billing.refund", "grant_id": gid, "arguments": ARGS})
    out = r.json()
    assert r.status_code == 200 and out["effect"] == "allow", out
    assert out["result"]["status"] == 200
    assert out["result"]["body"]["refunded"] == ARGS
    assert out["result"]["body"]["agent"] == "agent:coder"
    assert out["result"]["body"]["echo_key"] == "[REDACTED]"  # the careless echo is scrubbed

    assert len(seen.calls) == 1
    verified = seen.calls[0]
    assert (verified.tool, verified.audience, verified.grant) == ("billing.refund", "billing", gid)
    assert verified.args_digest == args_digest(ARGS)
    assert seen.headers[0]["x-api-key"] == secret  # injected through the jwt+secret lease
    claims = parse_token(seen.tokens[0]).claims
    assert claims["aud"] == "billing" and claims["args"] == args_digest(ARGS)

    leases = agent.get(f"/v1/grants/{gid}/leases").json()["leases"]
    assert [(l["kind"], l["revoked"], l["revoked_reason"]) for l in leases] == [
        ("jwt+secret", True, "used")]
    assert leases[0]["lease_id"] == claims["jti"]

    # the token is bound to those arguments and single use
    direct = httpx2.post(f"{tool.url}/refund", json={"order": "o-1", "amount": 99},
                         headers={"Authorization": f"Bearer {seen.tokens[0]}"})
    assert direct.status_code == 401 and direct.json()["error"]["code"] == "args_mismatch"
    again = httpx2.post(f"{tool.url}/refund", json=ARGS,
                        headers={"Authorization": f"Bearer {seen.tokens[0]}"})
    assert again.status_code == 401 and again.json()["error"]["code"] == "replayed"
    assert len(seen.calls) == 1


def test_a_denied_call_never_reaches_the_tool(world):
    live, tool, seen, _ = world
    agent = client(live, "agent")
    gid = request_grant(agent, "billing.refund", {"amount": {"le": 100}})
    out = agent.post("/v1/calls", json={"tool": "billing.refund", "grant_id": gid,
                                        "arguments": {"order": "o-1", "amount": 5000}}).json()
    assert (out["effect"], out["code"]) == ("deny", "argument_out_of_scope")
    assert "result" not in out
    nogrant = agent.post("/v1/calls", json={"tool": "billing.fail", "arguments": ARGS}).json()
    assert nogrant["effect"] == "deny" and "result" not in nogrant
    assert seen.calls == [] and seen.headers == []
    assert agent.get(f"/v1/grants/{gid}/leases").json()["leases"] == []


def test_failing_and_unreachable_tools_are_reported_without_the_secret(world):
    live, tool, seen, secret = world
    agent = client(live, "agent")
    gid = request_grant(agent)
    fail = agent.post("/v1/calls", json={"tool": "billing.fail", "grant_id": gid,
                                         "arguments": ARGS}).json()
    assert fail["effect"] == "allow" and fail["result"]["status"] == 500
    assert fail["result"]["body"] == "upstream exploded, bad key [REDACTED]"
    down = agent.post("/v1/calls", json={"tool": "billing.down", "grant_id": gid,
                                         "arguments": ARGS}).json()
    assert down["effect"] == "allow" and down["error"] == "upstream_unavailable"
    assert down["result"] is None
    assert seen.headers[0]["x-api-key"] == secret


def test_the_secret_leaks_nowhere(world, caplog, capfd, tmp_path):
    live, tool, seen, secret = world
    agent, admin = client(live, "agent"), client(live, "admin")
    gid = request_grant(agent)
    received: list[str] = []

    def call(path: str, body: dict) -> dict:
        r = agent.post(path, json=body)
        received.append(r.text)
        received.append(str(r.headers))
        return r.json()

    calls = [
        ("billing.refund", ARGS), ("billing.refund", {"order": "o-2", "amount": 7}),
        ("billing.fail", ARGS), ("billing.echo64", ARGS), ("billing.down", ARGS),
    ]
    outs = [call("/v1/calls", {"tool": t, "grant_id": gid, "arguments": a}) for t, a in calls]
    assert [o["effect"] for o in outs] == ["allow"] * 5
    assert outs[3]["result"]["body"] == {"k": "[REDACTED]", "u": "[REDACTED]"}
    call("/v1/calls", {"tool": "billing.refund", "arguments": ARGS})  # no grant: denied
    call("/v1/calls", {"tool": "billing.nope", "grant_id": gid, "arguments": ARGS})
    auth = call("/v1/authorize", {"tool": "billing.fail", "grant_id": gid, "arguments": ARGS})
    call(f"/v1/decisions/{auth['decision_id']}/result",
         {"ok": False, "output": None, "error": "tool said no"})
    # the upstream credential disappears: the jwt+secret lease cannot be minted, deny
    (tmp_path / "billing_key").unlink()
    gone = call("/v1/calls", {"tool": "billing.refund", "grant_id": gid, "arguments": ARGS})
    assert (gone["effect"], gone["code"]) == ("deny", "credential_unavailable")
    down = call("/v1/calls", {"tool": "billing.down", "grant_id": gid, "arguments": ARGS})
    assert down["error"] == "credential_unavailable"
    # the tool really had the secret on every call that reached it
    assert [h["x-api-key"] for h in seen.headers] == [secret] * 4

    for path in ["/v1/audit?limit=1000", f"/v1/grants/{gid}/decisions",
                 f"/v1/grants/{gid}/leases", f"/v1/decisions/{auth['decision_id']}",
                 "/v1/audit/verify", "/v1/grants"]:
        r = admin.get(path)
        assert r.status_code == 200, (path, r.text)
        received.append(r.text)
    records = admin.get("/v1/audit?limit=1000").json()["records"]
    assert {"call.decided", "call.completed", "grant.requested"} <= {r["type"] for r in records}
    export = subprocess.run([sys.executable, "-m", "adapters.cli", "audit", "export",
                             "--data-dir", str(live.data_dir)],
                            capture_output=True, text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    assert export.stdout.count("\n") >= len(records)
    captured = capfd.readouterr()
    log_text = caplog.text + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "upstream for tool billing.down is unavailable" in log_text  # logs were captured

    forms = {secret, *(f(secret.encode()).decode() for f in (base64.b64encode,
                                                             base64.urlsafe_b64encode))}
    forms |= {f.rstrip("=") for f in forms}
    places = {"agent responses": "\n".join(received), "audit export": export.stdout + export.stderr,
              "logs": log_text, "server output": captured.out + captured.err}
    for where, text in places.items():
        for form in forms:
            assert form not in text, f"the secret leaked into {where}"


async def test_an_http_tool_whose_audience_differs_from_policy_fails_at_startup(tmp_path):
    policy = load_policy_files([POLICY])
    bad = [{"name": "billing.fail", "url": dead_url(), "audience": "payments"}]
    with pytest.raises(ValueError, match="audience 'payments' differs"):
        await memory_runtime(policy=policy, http_tools=bad, data_dir=tmp_path)
    token_needed = [{"name": "billing.refund", "url": dead_url(), "audience": "billing"}]
    runtime = await memory_runtime(policy=policy, http_tools=token_needed, data_dir=tmp_path,
                                   secrets={"billing_key": {"env": "JITGATE_TEST_ABSENT"}})
    await runtime.close()


async def test_a_token_for_another_audience_is_never_sent():
    clock = FakeClock()
    issuer = CallTokenIssuer(Keyring.ephemeral(clock), "jitgate", clock)
    call = ToolCall(agent=Principal("agent:coder", Role.AGENT), tool="billing.fail",
                    arguments=ARGS, grant_id="gr_1")
    cred = await issuer.mint(MintRequest(call=call, decision_id="dec_1",
                                         args_digest=args_digest(ARGS), ttl_s=30,
                                         audience="payments", lease_id="lse_1",
                                         now=clock.now()))
    sent: list = []

    class Recorder:
        async def request(self, *a, **kw):
            sent.append((a, kw))
            raise AssertionError("must not be sent")

    fwd = HttpToolForwarder(HttpToolSpec("billing.fail", "http://127.0.0.1:9/x", "billing"),
                            client=Recorder())
    with pytest.raises(GatewayError) as err:
        await fwd(call, cred)
    assert err.value.code == "credential_unavailable" and sent == []
