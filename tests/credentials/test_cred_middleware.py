"""CallTokenMiddleware edge cases, in process through httpx2's ASGI transport."""

import httpx2
import pytest
from cred_support import ISS, make_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.credentials import CallTokenIssuer, CallTokenVerifier, Keyring
from adapters.credentials.middleware import CallTokenMiddleware
from gateway.clock import FakeClock


@pytest.fixture
def setup():
    clock = FakeClock()
    ring = Keyring.ephemeral(clock)
    issuer = CallTokenIssuer(ring, ISS, clock)
    verifier = CallTokenVerifier(ring.jwks(), audience="billing", clock=clock)

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"body": body.decode(), "jti": request.state.jitgate_call.jti,
                             "query": dict(request.query_params)})

    app = Starlette(routes=[Route("/t", echo, methods=["GET", "POST"])])
    wrapped = CallTokenMiddleware(app, verifier, tool="billing.refund", max_body_bytes=1000)
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=wrapped),
                                base_url="http://tool.test")

    async def mint(args, lease_id="ls_1"):
        return (await issuer.mint(make_request(now=clock.now(), arguments=args,
                                               lease_id=lease_id))).value

    return client, mint


async def test_body_reaches_the_app_unchanged_and_dedicated_header_works(setup):
    client, mint = setup
    token = await mint({"order": "o-1"})
    raw = b'{ "order" :  "o-1" }'
    r = await client.post("/t", content=raw, headers={"X-JITGate-Call-Token": token,
                                                      "Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json()["body"] == raw.decode() and r.json()["jti"] == "ls_1"


async def test_get_arguments_come_from_the_query(setup):
    client, mint = setup
    token = await mint({"order": "o-1", "full": "yes"})
    r = await client.get("/t", params={"order": "o-1", "full": "yes"},
                         headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["query"] == {"order": "o-1", "full": "yes"}


@pytest.mark.parametrize("headers,body,status,code", [
    ({}, b"{}", 401, "unauthenticated"),
    ({"Authorization": "Basic abc"}, b"{}", 401, "unauthenticated"),
    ({"Authorization": "Bearer x.y.z"}, b"{}", 401, "malformed"),
    ({"Authorization": "Bearer TOKEN"}, b"[1,2]", 400, "malformed_json"),
    ({"Authorization": "Bearer TOKEN"}, b"{not json", 400, "malformed_json"),
    ({"Authorization": "Bearer TOKEN"}, b'{"order": "' + b"x" * 2000 + b'"}', 413,
     "body_too_large"),
])
async def test_refusals_are_json_errors(setup, headers, body, status, code):
    client, mint = setup
    token = await mint({"order": "o-1"})
    headers = {k: v.replace("TOKEN", token) for k, v in headers.items()}
    r = await client.post("/t", content=body, headers=headers)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert token not in r.text
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
