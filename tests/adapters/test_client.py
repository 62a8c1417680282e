"""The client: HTTP (async and sync) against the real app on loopback, retry_after via tenacity
with a fake sleep, and fail-closed behaviour when the gateway cannot be reached."""

import asyncio
import json

import httpx2
import pytest

from adapter_support import IBAN_EVIL, IBAN_OK, PAYMENT_SCOPE
from adapters.client import (
    GatewayClient,
    GatewayClientError,
    SyncGatewayClient,
    ToolGate,
)
from adapters.compose import memory_runtime
from demos.fake_model import serve
from demos.stage import POLICY_DIR
from gateway.keys import create_key
from gateway.model import Role
from policies.loader import load_policy_files


@pytest.fixture(scope="module")
def http_gateway():
    async def build():
        runtime = await memory_runtime(load_policy_files([POLICY_DIR / "payments.yaml"]))
        agent = create_key(Role.AGENT, "payer", runtime.gateway.clock)
        other = create_key(Role.AGENT, "payer-2", runtime.gateway.clock)
        for key in (agent, other):
            await runtime.gateway.keys.add(key.record)
        return runtime, agent.secret_key, other.secret_key

    # each test uses its own agent: a drift in one makes that agent's next grants need approval
    runtime, agent_key, other_key = asyncio.run(build())
    with serve(runtime.app(with_mcp=False)) as url:
        yield url, agent_key, other_key


async def test_http_round_trip(http_gateway):
    url, agent_key, _ = http_gateway
    async with GatewayClient(url, agent_key) as gw:
        grant = await gw.request_grant("pay ACME", PAYMENT_SCOPE, ttl_s=900)
        gid = grant["grant_id"]
        assert (await gw.get_grant(gid))["status"] == "active"
        ok = await gw.authorize("payments.transfer", {"iban": IBAN_OK, "amount": 5}, gid, "c1")
        assert ok.allowed and ok.code == "allowed" and ok.token and ok.lease_id
        await gw.report_result(ok.decision_id, True, {"status": "sent"})
        bad = await gw.authorize("payments.transfer", {"iban": IBAN_EVIL, "amount": 5}, gid)
        assert not bad.allowed and bad.code in ("argument_out_of_scope", "grant_revoked_drift")
        review = await gw.authorize("payments.transfer", {"iban": IBAN_OK, "amount": 2000}, gid)
        log = await gw.decisions(gid)
        assert [d["decision_id"] for d in log] == [ok.decision_id, bad.decision_id,
                                                   review.decision_id]
        with pytest.raises(GatewayClientError) as err:
            await gw.get_grant("grt_nope")
        assert err.value.code in ("grant_not_found", "not_found") and err.value.status == 404
    async with GatewayClient(url, "jgk_wrong") as gw:
        with pytest.raises(GatewayClientError) as err:
            await gw.authorize("inbox.read", {})
        assert err.value.status == 401


def test_sync_client(http_gateway):
    url, _, other_key = http_gateway
    with SyncGatewayClient(url, other_key) as gw:
        gid = gw.request_grant("pay ACME", PAYMENT_SCOPE, ttl_s=600)["grant_id"]
        res = gw.authorize("payments.transfer", {"iban": IBAN_OK, "amount": 1}, gid)
        assert res.allowed
        gw.report_result(res.decision_id, True, "sent")
        assert [d["code"] for d in gw.decisions(gid)] == ["allowed"]


def _throttling_transport(answers):
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        body = answers.pop(0)
        return httpx2.Response(200, json=body)

    return httpx2.MockTransport(handler), seen


def _decision(effect, code, **extra):
    return {"decision_id": f"dec_{code}", "effect": effect, "code": code, "reasons": [],
            **extra}


async def test_authorize_with_retry_honours_retry_after():
    transport, seen = _throttling_transport([
        _decision("throttle", "rate_limited", retry_after=1.5),
        _decision("throttle", "rate_limited", retry_after=0.5),
        _decision("allow", "allowed"),
    ])
    waits = []

    async def fake_sleep(s):
        waits.append(s)

    async with GatewayClient("http://gw.test", "k", transport=transport, sleep=fake_sleep) as gw:
        res = await gw.authorize_with_retry("t", {"a": 1}, "grt_1", max_wait_s=10)
    assert res.allowed and waits == [1.5, 0.5] and len(seen) == 3


async def test_authorize_with_retry_stops_at_the_wait_budget():
    transport, _ = _throttling_transport([_decision("throttle", "rate_limited", retry_after=4)] * 5)
    waits = []

    async def fake_sleep(s):
        waits.append(s)

    async with GatewayClient("http://gw.test", "k", transport=transport, sleep=fake_sleep) as gw:
        res = await gw.authorize_with_retry("t", {}, max_wait_s=10)
    assert res.throttled and res.retry_after == 4 and waits == [4, 4]


def test_sync_retry_with_fake_sleep():
    transport, _ = _throttling_transport([_decision("throttle", "retry_backoff", retry_after=2),
                                          _decision("deny", "tool_not_in_scope")])
    waits = []
    with SyncGatewayClient("http://gw.test", "k", transport=transport, sleep=waits.append) as gw:
        res = gw.authorize_with_retry("t", {})
    assert res.code == "tool_not_in_scope" and waits == [2]


async def test_unreachable_gateway_refuses_and_the_tool_does_not_run():
    def down(request):
        raise httpx2.ConnectError("refused", request=request)

    ran = []
    async with GatewayClient("http://gw.test", "jgk_secret_key",
                             transport=httpx2.MockTransport(down)) as gw:
        with pytest.raises(GatewayClientError) as err:
            await gw.authorize("t", {})
        assert err.value.code == "gateway_unreachable"
        assert "jgk_secret_key" not in str(err.value)
        out = await ToolGate(gw, "grt_1").run("t", {}, lambda: ran.append(1))
    assert ran == [] and not out.ran and "code=gateway_unreachable" in out.text


async def test_api_error_and_garbage_answers():
    def handler(request):
        if request.url.path == "/v1/authorize":
            return httpx2.Response(200, text="not json")
        return httpx2.Response(409, json={"error": {"code": "conflict", "message": "again"}})

    async with GatewayClient("http://gw.test", "k", transport=httpx2.MockTransport(handler)) as gw:
        with pytest.raises(GatewayClientError) as err:
            await gw.authorize("t", {})
        assert err.value.code == "invalid_response"
        with pytest.raises(GatewayClientError) as err:
            await gw.report_result("dec_1", True, object())
        assert (err.value.code, err.value.status) == ("conflict", 409)
