"""The issuers and forwarders the composition root gets from settings, and the Redactor's reach."""

from __future__ import annotations

import base64

import pytest
from cred_support import make_request

from adapters.credentials import CallTokenIssuer, Keyring
from adapters.credentials.issuer_chain import IssuerChain
from adapters.credentials.issuer_registry import build_http_tools, build_issuers, replay_lookup
from adapters.credentials.secrets import Redactor, SecretInjectingIssuer, SecretResolver
from gateway.clock import FakeClock
from gateway.config import Settings
from policies.loader import load_policy_files

from cred_gateway_support import POLICIES

SECRET = "sk-test-Hq2v9LmZ0pXw"


def base(clock):
    return {"jwt": CallTokenIssuer(Keyring.ephemeral(clock), "jitgate", clock)}


def test_kinds_follow_the_settings():
    clock = FakeClock()
    assert build_issuers(Settings(), clock, base(clock)) == {}
    kinds = build_issuers(Settings(secrets={"k": {"env": "X"}}), clock, base(clock))
    assert sorted(kinds) == ["jwt+secret", "secret"]
    assert kinds["jwt+secret"].kind == "jwt+secret"
    assert replay_lookup(Settings(), clock) is None


async def test_a_chain_lease_carries_the_chain_kind_and_both_materials():
    clock = FakeClock()
    resolver = SecretResolver({"k": {"env": "K"}}, environ={"K": SECRET})
    released: list[str] = []

    class Spy(SecretInjectingIssuer):
        async def release(self, lease, reason):
            released.append(lease.kind)

    chain = IssuerChain(base(clock)["jwt"], Spy(resolver), kind="jwt+secret")
    cred = await chain.mint(make_request(now=clock.now(),
                                         options={"inject": {"secret": "k", "kind": "api_key"}}))
    assert cred.lease.kind == "jwt+secret" and cred.value.count(".") == 2
    assert cred.forward["headers"] == {"X-API-Key": SECRET}
    await chain.release(cred.lease, "used")
    assert released == ["jwt+secret"]


def test_the_redactor_scrubs_every_configured_secret_and_its_base64():
    # the forwarder's resolver never handed this secret out (the issuer's resolver did)
    redactor = Redactor(SecretResolver({"k": {"env": "K"}, "gone": {"env": "NOPE"}},
                                       environ={"K": SECRET}))
    b64 = base64.b64encode(SECRET.encode()).decode()
    out = redactor.scrub({"a": f"key={SECRET}", "b": [b64, b64.rstrip("=")], SECRET: 1})
    assert out == {"a": "key=[REDACTED]", "b": ["[REDACTED]", "[REDACTED]"], "[REDACTED]": 1}


def test_http_tools_must_agree_with_policy():
    policy = load_policy_files([str(POLICIES / "http_tools.yaml")])
    ok = Settings(http_tools=[{"name": "billing.fail", "url": "http://127.0.0.1:9/", "audience":
                               "billing"}])
    assert set(build_http_tools(ok, policy)) == {"billing.fail"}
    wrong = Settings(http_tools=[{"name": "billing.fail", "url": "http://127.0.0.1:9/",
                                  "audience": "payments"}])
    with pytest.raises(ValueError, match="differs from the policy audience 'billing'"):
        build_http_tools(wrong, policy)
    assert build_http_tools(wrong) != {}  # without a policy nothing is checked
