"""Forwarding to plain HTTP tools over loopback, and the secret-leak test."""

import json
import logging
import socket

import pytest
from cred_support import ISS, make_request, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from adapters.credentials import CallTokenIssuer, CallTokenVerifier, Keyring
from adapters.credentials.http_tool import HttpToolForwarder, HttpToolSpec
from adapters.credentials.middleware import CallTokenMiddleware
from adapters.credentials.secrets import InjectionSpec, SecretResolver
from gateway.clock import FakeClock
from gateway.errors import GatewayError

SECRET = "upstream-key-Zq81xW0pLm"
ARGS = {"order": "o-1", "amount": 10}


def upstream_app(verifier, seen):
    async def echo(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        # a careless upstream that reflects its credential back
        return JSONResponse({"args": await request.json(),
                             "key": request.headers.get("x-api-key"),
                             "auth": request.headers.get("authorization")})

    async def fail(request: Request) -> PlainTextResponse:
        seen.append(dict(request.headers))
        return PlainTextResponse(f"bad key {request.headers.get('x-api-key')}", status_code=500)

    async def search(request: Request) -> JSONResponse:
        return JSONResponse({"q": dict(request.query_params),
                             "agent": request.state.jitgate_call.agent})

    async def redirect(request: Request) -> PlainTextResponse:
        return PlainTextResponse("", status_code=307, headers={"location": "http://evil.test/"})

    verified = Starlette(routes=[Route("/refund", echo, methods=["POST"]),
                                 Route("/search", search, methods=["GET"])])
    return Starlette(routes=[
        Mount("/verified", app=CallTokenMiddleware(verified, verifier,
                                                   tool=lambda scope: "billing." + scope["path"]
                                                   .rsplit("/", 1)[-1])),
        Route("/plain", echo, methods=["POST"]),
        Route("/fail", fail, methods=["POST"]),
        Route("/redirect", redirect, methods=["POST"]),
    ])


def dead_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/x"


@pytest.fixture
async def env():
    clock = FakeClock()
    ring = Keyring.ephemeral(clock)
    issuer = CallTokenIssuer(ring, ISS, clock)
    verifier = CallTokenVerifier(ring.jwks(), audience="billing", issuer=ISS, clock=clock)
    resolver = SecretResolver({"billing_key": {"env": "BILLING_KEY"},
                               "absent": {"env": "ABSENT"}}, environ={"BILLING_KEY": SECRET})
    seen: list[dict] = []
    async with serve(upstream_app(verifier, seen)) as base:
        key = InjectionSpec("billing_key", kind="api_key")
        specs = [
            HttpToolSpec("billing.refund", f"{base}/verified/refund", "billing", inject=key),
            HttpToolSpec("billing.search", f"{base}/verified/search", "billing", method="GET"),
            HttpToolSpec("billing.plain", f"{base}/plain", "billing", send_token=False,
                         inject=InjectionSpec("billing_key", kind="bearer")),
            HttpToolSpec("billing.fail", f"{base}/fail", "billing", inject=key),
            HttpToolSpec("billing.redirect", f"{base}/redirect", "billing", inject=key),
            HttpToolSpec("billing.down", dead_url(), "billing", inject=key, timeout_s=2),
            HttpToolSpec("billing.nosecret", f"{base}/plain", "billing",
                         inject=InjectionSpec("absent")),
        ]
        forward = HttpToolForwarder(specs, resolver=resolver)

        async def run(tool, args=ARGS, lease_id="ls_1", with_token=True):
            req = make_request(tool, args, now=clock.now(), lease_id=lease_id)
            cred = await issuer.mint(req) if with_token else None
            return await forward(req.call, cred), cred

        yield run, seen


async def test_token_and_injected_secret_reach_the_tool_which_verifies_the_call(env):
    run, seen = env
    result, cred = await run("billing.refund")
    assert result["status"] == 200
    assert result["body"]["args"] == ARGS
    assert seen[-1]["x-api-key"] == SECRET
    assert seen[-1]["authorization"] == f"Bearer {cred.value}"
    assert result["body"]["key"] == "[REDACTED]"  # reflected secret scrubbed


async def test_get_tool_receives_query_and_token(env):
    run, _ = env
    result, _ = await run("billing.search", {"q": "refunds"})
    assert result == {"status": 200, "body": {"q": {"q": "refunds"}, "agent": "agent-1"}}


async def test_get_tool_with_typed_arguments_verifies(env):
    """Ints, booleans, null, lists and objects go as JSON text named in X-JITGate-Json-Args; the
    middleware reads the typed values back, so the token's argument digest matches."""
    run, _ = env
    args = {"q": "refunds", "limit": 5, "exact": True, "cursor": None, "tags": ["a", "b"],
            "range": {"min": 1.5, "max": 10}, "code": "5"}
    result, _ = await run("billing.search", args)
    assert result["status"] == 200, result
    assert result["body"]["q"] == {"q": "refunds", "limit": "5", "exact": "true", "cursor": "null",
                                   "tags": '["a","b"]', "range": '{"max":10,"min":1.5}',
                                   "code": "5"}


async def test_token_moves_to_dedicated_header_when_secret_uses_authorization(env):
    run, seen = env
    result, _ = await run("billing.plain", with_token=False)
    assert result["status"] == 200 and seen[-1]["authorization"] == f"Bearer {SECRET}"
    assert "x-jitgate-call-token" not in seen[-1]
    assert result["body"]["auth"] == "Bearer [REDACTED]"
    spec = HttpToolSpec("t", "http://x", "a", inject=InjectionSpec("s"))
    assert spec.token_header == "X-JITGate-Call-Token"


async def test_a_token_tool_without_a_token_is_refused_before_any_request(env):
    run, seen = env
    with pytest.raises(GatewayError) as info:
        await run("billing.refund", with_token=False)
    assert info.value.code == "credential_unavailable" and not seen


async def test_failures_are_coded_and_redirects_not_followed(env):
    run, _ = env
    result, _ = await run("billing.redirect")
    assert result["status"] == 307
    for tool, code in [("billing.down", "upstream_unavailable"),
                       ("billing.nosecret", "credential_unavailable"),
                       ("billing.unknown", "unknown_tool")]:
        with pytest.raises(GatewayError) as info:
            await run(tool)
        assert info.value.code == code


async def test_the_secret_never_leaks(env, caplog, capsys):
    """Configure a secret, forward calls (some failing) and search everything for it."""
    caplog.set_level(logging.DEBUG)
    run, seen = env
    returned: list = []
    audit: list = []
    for i, tool in enumerate(["billing.refund", "billing.plain", "billing.fail", "billing.down",
                              "billing.nosecret", "billing.redirect", "billing.refund"]):
        try:
            result, cred = await run(tool, {**ARGS, "i": i}, lease_id=f"ls_{i}",
                                     with_token=tool != "billing.plain")
            returned.append(result)
            if cred is not None:
                audit.append({"type": "credential.minted", "lease": cred.lease.public(),
                              "credential": repr(cred)})
        except GatewayError as err:
            returned.append(err.public())
            audit.append({"type": "call.failed", "error": str(err), "repr": repr(err)})
    assert any(h.get("x-api-key") == SECRET for h in seen)  # the upstream did get it
    assert any(r.get("status") == 500 for r in returned)
    out = capsys.readouterr()
    haystacks = {
        "returned to the agent": json.dumps(returned, default=str),
        "audit data": json.dumps(audit, default=str),
        "logs": caplog.text + "".join(str(r.args) for r in caplog.records),
        "stdout/stderr": out.out + out.err,
    }
    import base64

    forms = [SECRET, base64.b64encode(SECRET.encode()).decode()]
    for where, text in haystacks.items():
        for form in forms:
            assert form not in text, f"secret found in {where}"
