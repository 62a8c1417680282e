"""Workload JWTs: issuer, audience, expiry and signature are all checked; the role comes from a claim."""

from __future__ import annotations

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import FakeClock
from tests.support.live import start_live_gateway


@pytest.fixture
def issuer_key():
    return Ed25519PrivateKey.generate()


def pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def live(tmp_path, issuer_key):
    clock = FakeClock()
    gw = start_live_gateway(tmp_path / "d", clock=clock, drift_enabled=False, workload_issuers=[{
        "issuer": "https://idp.test", "audience": "jitgate", "public_key_pem": pem(issuer_key)}])
    yield gw
    gw.stop()


def token(key, clock, **over) -> str:
    claims = {"iss": "https://idp.test", "aud": "jitgate", "sub": "spiffe://test/agent/builder",
              "exp": clock.now() + 300, "iat": clock.now(), **over}
    return jwt.encode(claims, key, algorithm="EdDSA")


def grants(live, tok: str) -> httpx2.Response:
    return httpx2.get(live.url + "/v1/grants", headers={"Authorization": f"Bearer {tok}"})


def test_a_valid_workload_jwt_authenticates_an_agent(live, issuer_key):
    r = grants(live, token(issuer_key, live.clock))
    assert r.status_code == 200, r.text
    g = httpx2.post(live.url + "/v1/grants", headers={"Authorization": f"Bearer {token(issuer_key, live.clock)}"},
                    json={"objective": "read docs", "ttl_s": 60, "scope": [
                        {"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}]}).json()
    assert g["agent_id"] == "https://idp.test#spiffe://test/agent/builder"


@pytest.mark.parametrize("change", [
    {"aud": "someone-else"},
    {"iss": "https://evil.test"},
    {"exp": 1_000},
])
def test_wrong_audience_issuer_or_expiry_is_refused(live, issuer_key, change):
    r = grants(live, token(issuer_key, live.clock, **change))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"


def test_a_token_signed_by_another_key_is_refused(live):
    r = grants(live, token(Ed25519PrivateKey.generate(), live.clock))
    assert r.status_code == 401


def test_expiry_follows_the_gateway_clock(live, issuer_key):
    tok = token(issuer_key, live.clock)
    assert grants(live, tok).status_code == 200
    live.clock.advance(400)
    assert grants(live, tok).status_code == 401


def test_an_unknown_role_claim_is_refused(live, issuer_key):
    r = grants(live, token(issuer_key, live.clock, jitgate_role="superuser"))
    assert r.status_code == 401


def test_an_issuer_hands_out_agent_tokens_only_unless_configured(live, issuer_key):
    for role in ("admin", "reviewer"):
        r = grants(live, token(issuer_key, live.clock, jitgate_role=role))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"


@pytest.fixture
def live_reviewers(tmp_path, issuer_key):
    clock = FakeClock()
    gw = start_live_gateway(tmp_path / "r", clock=clock, drift_enabled=False, workload_issuers=[{
        "issuer": "https://idp.test", "audience": "jitgate", "public_key_pem": pem(issuer_key),
        "allowed_roles": ["agent", "reviewer"], "allowed_policy_roles": ["agent"]}])
    yield gw
    gw.stop()


def test_configured_roles_and_policy_roles_are_the_ceiling(live_reviewers, issuer_key):
    live = live_reviewers
    assert grants(live, token(issuer_key, live.clock, jitgate_role="reviewer")).status_code == 200
    assert grants(live, token(issuer_key, live.clock, jitgate_role="admin")).status_code == 401
    named = token(issuer_key, live.clock, jitgate_attributes={"policy_role": "agent"})
    assert grants(live, named).status_code == 200
    other = token(issuer_key, live.clock, jitgate_attributes={"policy_role": "maintainer"})
    assert grants(live, other).status_code == 401


def test_a_default_role_outside_the_allowed_roles_is_a_configuration_error():
    from pydantic import ValidationError

    from gateway.config import WorkloadIssuer
    with pytest.raises(ValidationError):
        WorkloadIssuer(issuer="https://idp.test", audience="jitgate", default_role="admin")
