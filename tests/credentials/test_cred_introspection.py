from dataclasses import replace

import pytest
from cred_support import ISS, World, make_request

from adapters.credentials import CallTokenIssuer, Keyring
from adapters.credentials.introspection import introspect, parse_introspection_form
from gateway.model import GrantStatus


@pytest.fixture
def world():
    return World()


async def test_active_token_answers_rfc7662_fields(world):
    cred = await world.mint()
    answer = await world.ask(cred.value)
    assert answer["active"] is True
    assert {k: answer[k] for k in ("sub", "aud", "jti", "iss", "grant", "tool")} == {
        "sub": "agent-1", "aud": "billing", "jti": "ls_1", "iss": ISS, "grant": "gr_1",
        "tool": "billing.refund"}
    assert answer["exp"] - answer["iat"] == 30 and answer["token_type"]


@pytest.mark.parametrize("status", [GrantStatus.REVOKED, GrantStatus.EXPIRED,
                                    GrantStatus.DENIED])
async def test_inactive_when_grant_is_no_longer_active(world, status):
    cred = await world.mint()
    world.grants["gr_1"] = replace(world.grants["gr_1"], status=status)
    assert await world.ask(cred.value) == {"active": False}


async def test_exhausted_grant_keeps_its_last_token_active(world):
    cred = await world.mint()
    world.grants["gr_1"] = replace(world.grants["gr_1"], status=GrantStatus.EXHAUSTED)
    assert (await world.ask(cred.value))["active"] is True


async def test_inactive_when_expired_used_lease_revoked_or_unknown(world):
    cred = await world.mint(lease_id="ls_a", ttl_s=10)
    world.clock.advance(10)
    assert await world.ask(cred.value) == {"active": False}

    cred = await world.mint(lease_id="ls_b")
    world.used.add("ls_b")
    assert await world.ask(cred.value) == {"active": False}

    cred = await world.mint(lease_id="ls_c")
    await world.leases.revoke("ls_c", "grant_revoked")
    assert await world.ask(cred.value) == {"active": False}

    cred = await world.issuer.mint(make_request(now=world.clock.now(), lease_id="ls_unrecorded"))
    assert await world.ask(cred.value) == {"active": False}

    world.grants.clear()
    cred = await world.mint(lease_id="ls_d")
    assert await world.ask(cred.value) == {"active": False}


async def test_inactive_for_unpublished_key_and_garbage(world):
    rogue = CallTokenIssuer(Keyring.ephemeral(world.clock), ISS, world.clock)
    cred = await rogue.mint(make_request(now=world.clock.now()))
    await world.leases.add(cred.lease)
    assert await world.ask(cred.value) == {"active": False}
    assert await world.ask("not-a-token") == {"active": False}


async def test_store_failure_answers_inactive(world):
    cred = await world.mint()

    async def broken(_):
        raise RuntimeError("db down")

    answer = await introspect(cred.value, keyring=world.keyring, leases=world.leases,
                              grant_lookup=broken, used=None, clock=world.clock)
    assert answer == {"active": False}


def test_form_parsing():
    assert parse_introspection_form(b"token=abc.def.ghi&token_type_hint=x") == "abc.def.ghi"
    assert parse_introspection_form(b"token=a&token=b") is None
    assert parse_introspection_form(b"") is None
