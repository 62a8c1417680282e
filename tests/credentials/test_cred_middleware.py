"""CallTokenMiddleware edge cases, in process through httpx2's ASGI transport."""

import json

import httpx2
import pytest
from cred_support import ISS, make_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.credentials import CallTokenIssuer, CallTokenVerifier, Keyring
from adapters.credentials.http_tool import (JSON_ARGS_HEADER, arguments_from_query,
                                            query_arguments)
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


async def test_typed_get_arguments_verify_and_tampering_fails(setup):
    client, mint = setup
    args = {"order": "o-1", "limit": 5, "full": False, "ids": [1, 2], "note": "7"}
    token = await mint(args)
    params, as_json = query_arguments(args)
    assert as_json == ["full", "ids", "limit"]
    named = json.dumps(as_json)
    bearer = {"Authorization": f"Bearer {token}"}

    async def get(query, names=named):
        headers = {**bearer, **({JSON_ARGS_HEADER: names} if names is not None else {})}
        return await client.get("/t", params=query, headers=headers)

    # tampering is refused before the token is used (it stays good for the real call)
    for query, names in [({**params, "limit": "500"}, named),       # another value
                         ({**params, "limit": '"5"'}, named),      # a string in JSON text
                         (params, None),                            # the names dropped: "5" != 5
                         (params, json.dumps(["full", "ids"])),     # one name dropped
                         ({**params, "note": "8"}, named),          # a string changed
                         ({**params, "extra": "1"}, named)]:        # an argument added
        r = await get(query, names)
        assert r.status_code in (400, 401), (query, names)
        code = r.json()["error"]["code"]
        assert code in ("args_mismatch", "malformed_json"), (query, names, code)
    for query, names in [(params, json.dumps(["limit", "limit"])),
                         (params, json.dumps(["limit", "missing"])),
                         (params, "not json"),
                         ({**params, "limit": "NaN"}, named)]:
        r = await get(query, names)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json"), names
    r = await client.get("/t?order=o-1&order=o-2", headers=bearer)  # parameter pollution
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json")

    r = await get(params)
    assert r.status_code == 200, r.text
    assert r.json()["query"] == {"order": "o-1", "limit": "5", "full": "false", "ids": "[1,2]",
                                 "note": "7"}


def test_query_encoding_round_trips_every_json_type():
    args = {"s": "x y&z=1", "num": "12", "i": -3, "f": 0.25, "t": True, "n": None,
            "l": [1, "a", {"b": [None]}], "o": {"é": "ü"}, "empty": ""}
    params, as_json = query_arguments(args)
    assert arguments_from_query(params.items(), json.dumps(as_json)) == args


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
