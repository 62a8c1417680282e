"""Helpers for the end-to-end credential tests: a real HTTP tool (CallTokenMiddleware) served by
uvicorn on 127.0.0.1 in its own thread, and small HTTP client shortcuts for the live gateway."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from adapters.credentials import CallTokenVerifier
from adapters.credentials.middleware import CallTokenMiddleware

__all__ = ["POLICIES", "ToolServer", "client", "request_grant", "dead_url",
           "billing_tool_app", "Seen"]

POLICIES = Path(__file__).resolve().parent / "policies"


@dataclass
class Seen:
    """What the tool received: headers of every request that reached a handler, verified calls."""

    headers: list[dict[str, str]] = field(default_factory=list)
    calls: list[Any] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


def billing_tool_app(verifier: CallTokenVerifier, seen: Seen) -> Any:
    """billing.refund echoes (a careless upstream: it reflects its API key), billing.fail 500s
    with the key in the text, billing.echo64 returns the key base64-encoded."""

    def note(request: Request) -> str | None:
        seen.headers.append(dict(request.headers))
        seen.calls.append(request.state.jitgate_call)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        seen.tokens.append(request.headers.get("x-jitgate-call-token") or token)
        return request.headers.get("x-api-key")

    async def refund(request: Request) -> JSONResponse:
        key = note(request)
        return JSONResponse({"refunded": await request.json(), "echo_key": key,
                             "agent": request.state.jitgate_call.agent})

    async def fail(request: Request) -> PlainTextResponse:
        key = note(request)
        return PlainTextResponse(f"upstream exploded, bad key {key}", status_code=500)

    async def echo64(request: Request) -> JSONResponse:
        key = note(request) or ""
        return JSONResponse({"k": base64.b64encode(key.encode()).decode(),
                             "u": base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")})

    inner = Starlette(routes=[Route("/refund", refund, methods=["POST"]),
                              Route("/fail", fail, methods=["POST"]),
                              Route("/echo64", echo64, methods=["POST"])])
    return CallTokenMiddleware(inner, verifier,
                               tool=lambda scope: "billing." + scope["path"].rsplit("/", 1)[-1])


class ToolServer:
    """uvicorn on 127.0.0.1 in a background thread; its log goes to stderr (captured by capfd).
    The port is chosen first, so the gateway can be configured with the URL before the app
    (which needs the gateway's JWKS URL) exists."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any) -> "ToolServer":
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_level="info", lifespan="off"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        daemon=True)
        self._thread.start()
        ready = threading.Event()
        for _ in range(2000):  # readiness poll, not time logic
            if self._server.started or not self._thread.is_alive():
                break
            ready.wait(0.005)
        if not self._server.started:
            raise RuntimeError("the tool server did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)


def client(live: Any, who: str) -> httpx2.Client:
    return httpx2.Client(base_url=live.url, timeout=30,
                         headers={"Authorization": f"Bearer {live.keys[who]}"})


BILLING_TOOLS = ("billing.refund", "billing.fail", "billing.echo64", "billing.down")


def request_grant(agent: httpx2.Client, tool: str | None = None, args: dict | None = None,
                  ttl_s: int = 600, objective: str = "refund order o-1 for the customer") -> str:
    tools = (tool,) if tool else BILLING_TOOLS
    scope = [{"tool": t, "args": args or {}} for t in tools]
    r = agent.post("/v1/grants", json={"objective": objective, "scope": scope, "ttl_s": ttl_s})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "active", r.json()
    return r.json()["grant_id"]


def dead_url(path: str = "/x") -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
