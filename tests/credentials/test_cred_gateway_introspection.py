"""POST /v1/introspect through the real gateway: a token is inactive once its result is reported,
its grant revoked, its lease expired, or a tool used it (shared Redis replay store); and the
lease listing after a revocation."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from cred_gateway_support import POLICIES, client, request_grant

from adapters.credentials import CallTokenVerifier
from adapters.credentials.issuer_registry import REPLAY_PREFIX, replay_prefix
from adapters.credentials.replay import RedisReplayStore
from gateway.config import Settings
from tests.support.live import start_live_gateway
from tests.support.services import REDIS_URL, service_missing

ARGS = {"order": "o-1", "amount": 10}
POLICY = str(POLICIES / "http_tools.yaml")


@pytest.fixture
def live(tmp_path):
    gw = start_live_gateway(tmp_path / "data", policy_files=[POLICY], drift_enabled=False)
    yield gw
    gw.stop()


def authorize(agent, gid: str, tool: str = "billing.fail", arguments: dict = ARGS) -> dict:
    out = agent.post("/v1/authorize", json={"tool": tool, "grant_id": gid,
                                            "arguments": arguments}).json()
    assert out["effect"] == "allow", out
    return out


def active(live, token: str) -> bool:
    r = client(live, "admin").post("/v1/introspect", json={"token": token})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"active"} or body["active"] is True
    return body["active"]


def test_reported_revoked_and_expired_tokens_are_inactive(live):
    agent = client(live, "agent")
    gid = request_grant(agent)
    first = authorize(agent, gid)
    token = first["credential"]["token"]
    r = client(live, "admin").post("/v1/introspect", json={"token": token}).json()
    assert r["active"] is True and r["aud"] == "billing" and r["grant"] == gid
    assert r["jti"] == first["credential"]["lease_id"] and r["sub"] == "agent:coder"
    form = client(live, "admin").post("/v1/introspect", data={"token": token}).json()
    assert form["active"] is True

    done = agent.post(f"/v1/decisions/{first['decision_id']}/result",
                      json={"ok": True, "output": {"refunded": True}})
    assert done.status_code == 200, done.text
    assert active(live, token) is False  # complete() ended the lease

    second = authorize(agent, gid)["credential"]["token"]
    expiring = authorize(agent, gid, arguments={"order": "o-2", "amount": 1})["credential"]
    assert active(live, second) and active(live, expiring["token"])
    live.clock.advance(expiring["expires_at"] - live.clock.now())
    assert active(live, expiring["token"]) is False

    gid2 = request_grant(agent)
    third = authorize(agent, gid2)["credential"]["token"]
    assert active(live, third)
    revoked = client(live, "reviewer").post(f"/v1/grants/{gid2}/revoke", json={"reason": "done"})
    assert revoked.json()["status"] == "revoked"
    assert active(live, third) is False
    assert active(live, "not-a-token") is False


def test_revocation_ends_every_live_lease_and_names_them(live):
    agent, reviewer = client(live, "agent"), client(live, "reviewer")
    gid = request_grant(agent)
    used = authorize(agent, gid)
    agent.post(f"/v1/decisions/{used['decision_id']}/result", json={"ok": True, "output": "ok"})
    live_ids = {authorize(agent, gid, arguments={"order": f"o-{i}", "amount": i})["credential"]
                ["lease_id"] for i in range(2)}
    before = agent.get(f"/v1/grants/{gid}/leases").json()["leases"]
    assert sorted(l["revoked"] for l in before) == [False, False, True]

    assert reviewer.post(f"/v1/grants/{gid}/revoke",
                         json={"reason": "task done"}).json()["status"] == "revoked"
    after = {l["lease_id"]: l for l in agent.get(f"/v1/grants/{gid}/leases").json()["leases"]}
    assert len(after) == 3 and all(l["revoked"] for l in after.values())
    assert after[used["credential"]["lease_id"]]["revoked_reason"] == "used"
    assert {after[i]["revoked_reason"] for i in live_ids} == {"grant revoked"}
    assert all(l["kind"] == "jwt" and l["grant_id"] == gid for l in after.values())

    records = client(live, "admin").get("/v1/audit", params={"grant_id": gid,
                                                             "limit": 1000}).json()["records"]
    revoked = [r for r in records if r["type"] == "grant.revoked"]
    assert len(revoked) == 1 and set(revoked[0]["data"]["leases"]) == live_ids
    assert client(live, "agent2").get(f"/v1/grants/{gid}/leases").status_code == 404


def test_a_token_a_tool_used_reads_inactive_with_a_shared_redis_replay_store(tmp_path):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception:
        service_missing(f"redis at {REDIS_URL}")
    prefix = f"jitgate-test:{secrets.token_hex(6)}:jti:"
    issuers = {"jwt": {"replay_prefix": prefix}}
    assert replay_prefix(Settings(credential_issuers=issuers)) == prefix
    assert replay_prefix(Settings()) == REPLAY_PREFIX
    live = start_live_gateway(tmp_path / "data", policy_files=[POLICY], drift_enabled=False,
                              redis_url=REDIS_URL, credential_issuers=issuers)
    try:
        agent = client(live, "agent")
        gid = request_grant(agent)
        token = authorize(agent, gid)["credential"]["token"]
        assert active(live, token)

        async def tool_verifies() -> str:
            store = RedisReplayStore(REDIS_URL, prefix, clock=live.clock)
            try:
                verifier = CallTokenVerifier(f"{live.url}/.well-known/jwks.json",
                                             audience="billing", issuer="jitgate",
                                             clock=live.clock, replay=store)
                call = await verifier.verify(token, tool="billing.fail", arguments=ARGS)
                return call.jti
            finally:
                await store.aclose()

        assert asyncio.run(tool_verifies()).startswith("lse")
        assert active(live, token) is False  # used, though its result is not reported yet
    finally:
        live.stop()
