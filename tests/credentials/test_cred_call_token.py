"""The 'done means' list for signed call tokens, through the public verifier."""

import json

import jwt
import pytest
from cred_support import make_request

from adapters.credentials import CallTokenIssuer, CallTokenVerifier, Keyring, TokenError
from adapters.credentials.keyring import b64url, b64url_decode
from gateway.clock import FakeClock
from gateway.ports import CredentialIssuer

ISS = "https://gateway.test"
ARGS = {"order": "o-1", "amount": 10, "note": {"b": 1, "a": [1, 2]}}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def keyring(clock):
    return Keyring.ephemeral(clock)


@pytest.fixture
def issuer(keyring, clock):
    return CallTokenIssuer(keyring, ISS, clock)


@pytest.fixture
def verifier(keyring, clock):
    return CallTokenVerifier(keyring.jwks, audience="billing", issuer=ISS, clock=clock)


async def mint(issuer, clock, **kw):
    kw.setdefault("arguments", ARGS)
    return (await issuer.mint(make_request(now=clock.now(), **kw))).value


async def refused(verifier, token, code, tool="billing.refund", arguments=ARGS):
    with pytest.raises(TokenError) as info:
        await verifier.verify(token, tool=tool, arguments=arguments)
    assert info.value.code == code
    assert not token or token not in str(info.value)
    return info.value


async def test_issuer_implements_the_port_and_honours_lease_id_and_ttl(issuer, clock):
    assert isinstance(issuer, CredentialIssuer) and issuer.kind == "jwt"
    cred = await issuer.mint(make_request(now=clock.now(), ttl_s=45, lease_id="ls_abc",
                                          arguments=ARGS))
    lease = cred.lease
    assert (lease.lease_id, lease.kind, lease.grant_id, lease.agent_id, lease.tool) == (
        "ls_abc", "jwt", "gr_1", "agent-1", "billing.refund")
    assert lease.expires_at - lease.issued_at == 45
    claims = json.loads(b64url_decode(cred.value.split(".")[1]))
    assert claims["jti"] == "ls_abc" and claims["exp"] - claims["iat"] == 45
    assert cred.value not in repr(cred)


async def test_a_valid_token_verifies_once_with_every_claim(issuer, verifier, clock):
    token = await mint(issuer, clock)
    call = await verifier.verify(token, tool="billing.refund",
                                 arguments={"note": {"a": [1, 2], "b": 1}, "amount": 10,
                                            "order": "o-1"})  # key order is irrelevant
    assert (call.agent, call.grant, call.tool, call.audience, call.jti, call.issuer) == (
        "agent-1", "gr_1", "billing.refund", "billing", "ls_1", ISS)


async def test_standard_jwt_libraries_accept_the_token(issuer, keyring, clock):
    token = await mint(issuer, clock)
    key = jwt.PyJWK(keyring.jwks()["keys"][0])
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience="billing", issuer=ISS,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["sub"] == "agent-1" and claims["tool"] == "billing.refund"
    assert jwt.get_unverified_header(token)["kid"] == keyring.active_kid


async def test_refused_for_different_arguments(issuer, verifier, clock):
    token = await mint(issuer, clock)
    await refused(verifier, token, "args_mismatch", arguments={**ARGS, "amount": 11})
    await refused(verifier, token, "args_mismatch", arguments={})
    # a refusal does not burn the token: the right call still goes through
    await verifier.verify(token, tool="billing.refund", arguments=ARGS)


async def test_refused_for_another_tool_or_audience(issuer, verifier, keyring, clock):
    token = await mint(issuer, clock)
    await refused(verifier, token, "tool_mismatch", tool="billing.delete")
    other = CallTokenVerifier(keyring.jwks, audience="crm", clock=clock)
    await refused(other, token, "wrong_audience")
    wrong_iss = CallTokenVerifier(keyring.jwks, audience="billing", issuer="x", clock=clock)
    await refused(wrong_iss, token, "wrong_issuer")


async def test_refused_after_expiry_with_small_leeway(issuer, verifier, clock):
    token = await mint(issuer, clock, ttl_s=30)
    clock.advance(30 + 4)  # within the 5 s leeway
    await verifier.verify(token, tool="billing.refund", arguments=ARGS)
    token2 = await mint(issuer, clock, ttl_s=30, lease_id="ls_2")
    clock.advance(35)
    await refused(verifier, token2, "expired")


async def test_refused_a_second_time(issuer, verifier, clock):
    token = await mint(issuer, clock)
    await verifier.verify(token, tool="billing.refund", arguments=ARGS)
    await refused(verifier, token, "replayed")


async def test_refused_with_a_key_that_is_not_published(issuer, verifier, clock):
    rogue = CallTokenIssuer(Keyring.ephemeral(clock), ISS, clock)
    await refused(verifier, await mint(rogue, clock), "unknown_kid")


async def test_refused_when_signature_or_payload_is_tampered(issuer, verifier, clock):
    token = await mint(issuer, clock)
    head, body, sig = token.split(".")
    claims = json.loads(b64url_decode(body))
    claims["tool"] = "billing.delete"
    forged = f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"
    await refused(verifier, forged, "bad_signature", tool="billing.delete")
    # same kid, other key
    rogue_ring = Keyring.ephemeral(clock)
    bad_sig = b64url(rogue_ring.sign(f"{head}.{body}".encode())[1])
    await refused(verifier, f"{head}.{body}.{bad_sig}", "bad_signature")


@pytest.mark.parametrize("token", [
    "", "abc", "a.b", "a.b.c.d", "!!!.???.***",
    b64url(b'{"alg":"none","kid":"k"}') + "." + b64url(b"{}") + ".",
    b64url(b'{"alg":"HS256","kid":"k"}') + "." + b64url(b"{}") + "." + b64url(b"x" * 64),
])
async def test_malformed_tokens(verifier, token):
    await refused(verifier, token, "malformed")


async def test_rotation_old_tokens_valid_until_expiry_and_new_ones_verify(issuer, keyring,
                                                                          verifier, clock):
    old_token = await mint(issuer, clock, ttl_s=60, lease_id="ls_old")
    old_kid = keyring.active_kid
    new_kid = keyring.rotate(max_token_ttl_s=60, leeway_s=5)
    new_token = await mint(issuer, clock, ttl_s=60, lease_id="ls_new")
    assert json.loads(b64url_decode(new_token.split(".")[0]))["kid"] == new_kid != old_kid
    clock.advance(50)
    await verifier.verify(old_token, tool="billing.refund", arguments=ARGS)
    await verifier.verify(new_token, tool="billing.refund", arguments=ARGS)
    clock.advance(16)  # past exp + leeway of the old key's last token: the key is gone
    assert old_kid not in keyring.kids()
    await refused(verifier, old_token, "expired")
    fresh = CallTokenVerifier(keyring.jwks, audience="billing", clock=clock)
    await refused(fresh, old_token, "unknown_kid")


async def test_token_needs_a_positive_ttl(issuer, clock):
    with pytest.raises(ValueError):
        await issuer.mint(make_request(now=clock.now(), ttl_s=0))
