"""The Starlette application: the HTTP API, `/openapi.json`, `/metrics`, and `/mcp` when given."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Callable

from prometheus_client import CollectorRegistry, Counter, make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route  # noqa: F401

from .api import ApiServices, api_routes
from .errors import guarded, http_exception_handler
from .json_response import JSONResponse
from .openapi import openapi_document
from .ui import ui_routes

__all__ = ["build_app", "DecisionMetrics"]


class DecisionMetrics:
    """Prometheus counters fed by the gateway's decision listener."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("jitgate_decisions", "Decisions by effect and code",
                                 ["effect", "code"], registry=self.registry)
        self._children: dict[tuple[str, str], Any] = {}  # codes are a closed table

    def observe(self, effect: str, code: str) -> None:
        child = self._children.get((effect, code))
        if child is None:
            child = self._children[(effect, code)] = self.decisions.labels(effect=effect,
                                                                           code=code)
        child.inc()


def build_app(services: ApiServices, *, mcp: tuple[Any, Callable[[], Any]] | None = None,
              extra_routes: list[BaseRoute] | None = None,
              lifespans: list[Callable[[], Any]] | None = None,
              metrics: DecisionMetrics | None = None) -> Starlette:
    """`mcp` is (asgi_app, lifespan_factory) from adapters.mcp; mounted at /mcp."""
    routes: list[BaseRoute] = [*api_routes(services),
                               *ui_routes(services, csrf_secret=services.csrf_secret),
                               *(extra_routes or [])]

    async def openapi(request: Request) -> Response:
        """This document."""
        extra = {"/mcp": {"post": {"summary": "MCP streamable HTTP endpoint",
                                   "security": [{"bearer": []}],
                                   "responses": {"200": {"description": "JSON-RPC"}}}}} if mcp else {}
        extra["/metrics"] = {"get": {"summary": "Prometheus metrics",
                                     "responses": {"200": {"description": "text"}}}}
        return JSONResponse(openapi_document(routes + [Route("/openapi.json", openapi)], extra))

    routes.append(Route("/openapi.json", guarded(openapi), methods=["GET"]))
    metrics = metrics or DecisionMetrics()
    routes.append(Mount("/metrics", app=make_asgi_app(registry=metrics.registry)))
    all_lifespans = list(lifespans or [])
    mcp_app = None
    if mcp is not None:
        mcp_app, mcp_lifespan = mcp
        all_lifespans.append(mcp_lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for factory in all_lifespans:
                await stack.enter_async_context(factory())
            yield

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={Exception: http_exception_handler,
                                        404: http_exception_handler,
                                        405: http_exception_handler})
    app.state.services = services
    app.state.metrics = metrics
    if mcp_app is not None:
        return PathDispatch(app, mcp_app, MCP_PREFIXES)
    return app


MCP_PREFIXES = ("/mcp", "/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server")


class PathDispatch:
    """Send MCP paths to the MCP app and everything else (and the lifespan) to the API app.

    Mounting the MCP app at "/" would hand it every unknown path; this keeps our JSON 404s.
    """

    def __init__(self, main: Any, other: Any, prefixes: tuple[str, ...]) -> None:
        self.main, self.other, self.prefixes = main, other, prefixes
        self.state = main.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope.get("path", "")
            if any(path == p or path.startswith(p + "/") for p in self.prefixes):
                await self.other(scope, receive, send)
                return
        await self.main(scope, receive, send)
