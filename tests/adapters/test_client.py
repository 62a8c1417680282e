"""The client: HTTP (async and sync) against the real app on loopback, retry_after via tenacity
with a fake sleep, fail-closed behaviour when the gateway cannot be reached, and values JSON
cannot hold (NaN, Infinity) refused or reported, never raised into the agent's run."""

import json

import httpx2
import pytest
from openai import AsyncOpenAI

from adapter_support import IBAN_EVIL, IBAN_OK, PAYMENT_SCOPE
from adapters.client import (
    GatewayClient,
    GatewayClientError,
    SyncGatewayClient,
    ToolGate,
)
from adapters.openai import LocalTool, ToolBox, run_chat
from demos.fake_model import call, say, tool_outputs


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


async def _outcome(url, key, decision_id):
    async with httpx2.AsyncClient(base_url=url,
                                  headers={"Authorization": f"Bearer {key}"}) as http:
        return (await http.get(f"/v1/decisions/{decision_id}")).json()["outcome"]


async def test_a_nan_output_is_reported_and_the_run_goes_on(http_gateway):
    # a tool returning a NaN statistic: it ran, so its outcome is recorded and the model reads it
    url, agent_key, _ = http_gateway
    ran = []
    async with GatewayClient(url, agent_key) as gw:
        gid = (await gw.request_grant("read my inbox", PAYMENT_SCOPE, ttl_s=900))["grant_id"]
        out = await ToolGate(gw, gid).run(
            "inbox.read", {}, lambda: ran.append(1) or {"mean": float("nan"), "n": 0})
        inf = await ToolGate(gw, gid).run("inbox.read", {}, lambda: float("inf"))
    assert ran == [1] and out.ran and out.ok and "NaN" in out.text
    assert inf.ran and inf.ok
    for decision in (out.result.decision_id, inf.result.decision_id):
        outcome = await _outcome(url, agent_key, decision)
        assert outcome["ok"] is True and outcome["output_bytes"] > 0


async def test_nan_arguments_are_refused_never_raised(http_gateway, fake_model):
    url, _, other_key = http_gateway
    model, base_url = fake_model
    ran = []
    tools = ToolBox([LocalTool("read", lambda **a: ran.append(a) or "mail",
                               gateway_tool="inbox.read")])
    model.script("fake", [call("read", n=float("nan")), say("stopped")])
    async with GatewayClient(url, other_key) as gw:
        gid = (await gw.request_grant("read my inbox", PAYMENT_SCOPE, ttl_s=900))["grant_id"]
        with pytest.raises(GatewayClientError) as err:
            await gw.authorize("inbox.read", {"n": float("inf")}, gid)
        assert err.value.code == "invalid_arguments"
        out = await ToolGate(gw, gid).run("inbox.read", {"n": float("nan")},
                                          lambda **a: ran.append(a))
        assert not out.ran and out.error_code == "invalid_arguments"
        assert "code=invalid_arguments" in out.text
        # the real openai client and the loop: the model's NaN becomes a refusal it reads
        client = AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)
        run = await run_chat(client, "fake", [{"role": "user", "content": "read"}], tools,
                             ToolGate(gw, gid))
        assert run.final_text == "stopped"
        assert [(c.code, c.ran) for c in run.calls] == [("invalid_arguments", False)]
        assert any("code=invalid_arguments" in o for o in tool_outputs(model.requests[-1]))
        assert await gw.decisions(gid) == []
    with SyncGatewayClient(url, other_key) as sync:
        with pytest.raises(GatewayClientError) as err:
            sync.authorize("inbox.read", {"n": float("nan")}, gid)
        assert err.value.code == "invalid_arguments"
    assert ran == []
