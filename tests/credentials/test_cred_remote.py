"""A tool behind CallTokenMiddleware, served by uvicorn, verifying against a gateway over loopback:
JWKS fetched over HTTP (cached, refetched on an unknown kid, rate limited) and introspection."""

import socket

import httpx2
import pytest
from cred_support import ISS, World, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.credentials import CallTokenIssuer, CallTokenVerifier, Keyring, TokenError
from adapters.credentials.middleware import CallTokenMiddleware
from gateway.model import GrantStatus

ARGS = {"order": "o-1", "amount": 10}


def tool_app(verifier):
    async def refund(request: Request) -> JSONResponse:
        call = request.state.jitgate_call
        return JSONResponse({"refunded": (await request.json())["order"], "agent": call.agent})

    app = Starlette(routes=[Route("/refund", refund, methods=["POST"])])
    return CallTokenMiddleware(app, verifier, tool="billing.refund")


@pytest.fixture
async def stack():
    world = World()
    async with serve(world.app()) as gateway_url:
        verifier = CallTokenVerifier(f"{gateway_url}/.well-known/jwks.json", audience="billing",
                                     issuer=ISS, clock=world.clock,
                                     introspection_url=f"{gateway_url}/v1/introspect",
                                     introspection_auth="Bearer tool-secret")
        async with serve(tool_app(verifier)) as tool_url:
            async with httpx2.AsyncClient(base_url=tool_url) as client:
                yield world, verifier, client


async def call(client, token, args=ARGS):
    return await client.post("/refund", json=args, headers={"Authorization": f"Bearer {token}"})


async def test_end_to_end_single_use_and_argument_binding(stack):
    world, verifier, client = stack
    token = (await world.mint()).value
    bad = await call(client, token, {**ARGS, "amount": 1000})
    assert bad.status_code == 401
    assert bad.json() == {"error": {"code": "args_mismatch",
                                    "message": "the token is for other arguments"}}
    ok = await call(client, token)
    assert ok.status_code == 200 and ok.json() == {"refunded": "o-1", "agent": "agent-1"}
    again = await call(client, token)
    assert again.status_code == 401 and again.json()["error"]["code"] == "replayed"
    assert world.jwks_hits == 1  # cached


async def test_jwks_refetched_on_unknown_kid_and_rate_limited(stack):
    world, verifier, client = stack
    assert (await call(client, (await world.mint(lease_id="ls_1")).value)).status_code == 200
    world.keyring.rotate(max_token_ttl_s=60)
    world.clock.advance(5)  # a verifier refetches at most every min_refresh_s (5 s)
    new = (await world.mint(lease_id="ls_2")).value
    assert (await call(client, new)).status_code == 200
    assert world.jwks_hits == 2

    rogue = CallTokenIssuer(Keyring.ephemeral(world.clock), ISS, world.clock)
    forged = (await rogue.mint(world_request(world, "ls_3"))).value
    r = await call(client, forged)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unknown_kid"
    assert world.jwks_hits == 2  # refetch within min_refresh_s is refused
    world.clock.advance(5)
    r = await call(client, forged)
    assert r.json()["error"]["code"] == "unknown_kid" and world.jwks_hits == 3


def world_request(world, lease_id):
    from cred_support import make_request

    return make_request(now=world.clock.now(), lease_id=lease_id, arguments=ARGS)


async def test_revoked_grant_or_lease_is_refused_through_introspection(stack):
    world, verifier, client = stack
    token = (await world.mint(lease_id="ls_1")).value
    world.grants["gr_1"] = world.grants["gr_1"].evolve(status=GrantStatus.REVOKED)
    r = await call(client, token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked"

    world.grants["gr_1"] = world.grants["gr_1"].evolve(status=GrantStatus.ACTIVE)
    token = (await world.mint(lease_id="ls_2")).value
    await world.leases.revoke("ls_2", "grant_revoked")
    r = await call(client, token)
    assert r.json()["error"]["code"] == "revoked"
    # the refused token was not consumed: once the lease is live it verifies
    world.leases.leases["ls_2"] = world.leases.leases["ls_2"].__class__(
        **{**world.leases.leases["ls_2"].public(), "revoked": False})
    assert (await call(client, token)).status_code == 200


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


async def test_unreachable_gateway_fails_closed():
    world = World()
    token = (await world.mint()).value
    dead = closed_port_url()
    verifier = CallTokenVerifier(f"{dead}/.well-known/jwks.json", audience="billing",
                                 clock=world.clock)
    with pytest.raises(TokenError) as info:
        await verifier.verify(token, tool="billing.refund", arguments=ARGS)
    assert info.value.code == "jwks_unavailable"

    verifier = CallTokenVerifier(world.keyring.jwks(), audience="billing", clock=world.clock,
                                 introspection_url=f"{dead}/v1/introspect")
    with pytest.raises(TokenError) as info:
        await verifier.verify(token, tool="billing.refund", arguments=ARGS)
    assert info.value.code == "introspection_unavailable"


async def test_known_keys_survive_a_jwks_outage_and_refetch_backs_off():
    world = World()
    calls = {"n": 0, "down": False}

    def source():
        calls["n"] += 1
        if calls["down"]:
            raise OSError("down")
        return world.keyring.jwks()

    verifier = CallTokenVerifier(source, audience="billing", clock=world.clock)
    await verifier.verify((await world.mint(lease_id="a")).value, tool="billing.refund",
                          arguments=ARGS)
    calls["down"] = True
    world.clock.advance(301)  # the cache is stale; the refresh fails; the known key still works
    await verifier.verify((await world.mint(lease_id="b")).value, tool="billing.refund",
                          arguments=ARGS)
    await verifier.verify((await world.mint(lease_id="c")).value, tool="billing.refund",
                          arguments=ARGS)
    assert calls["n"] == 2  # no refetch storm during the back-off
