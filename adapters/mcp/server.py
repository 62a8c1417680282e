"""JITGate as an MCP server: fronts the upstreams and authorizes every `tools/call`.

One low-level `Server` serves both protocol eras over stdio and streamable HTTP. Tool names
and arguments are always taken from the JSON-RPC body, never from `Mcp-*` headers. Every
tools/call ends as an audited decision, and policy and edge outcomes are tool results with
`is_error=True` (see results.py), never protocol errors: a pin check that fails refuses
(`store_unavailable`, `internal_error`), a schema that cannot be checked denies
(`invalid_arguments`, see schema_checks.py), an allowed call whose upstream fails or answers
with an error is refused after the fact (`upstream_unavailable`, `upstream_error`), and a
cancelled one is recorded as failed (`cancelled`). Tools whose definition no longer matches
its pin are not listed. Over stdio the agent key is authenticated again on every request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import anyio
import mcp.types as t
from mcp.server import Server
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from gateway.grants import GrantRequest
from gateway.model import CallOutcome, Grant, GrantStatus, Principal, ToolCall
from gateway.pipeline import durable_or_not, unrecorded
from gateway.ports import StoreUnavailable

from .auth import principal_from_access_token
from .grant_tools import (OWN_TOOLS, GrantTools, baseline_patterns, ceiling_patterns,
                          matches_scope, own_tool_definitions)
from .pinning import GatewayPins, PinChecker
from .catalog import UpstreamCatalog
from .results import decision_refusal, outcome_output, refusal
from .schema_checks import SchemaChecks
from .sessions import Sessions
from .upstreams import RoutedTool, UpstreamManager, UpstreamUnavailable

__all__ = ["GatewayPort", "McpGateway", "build_mcp_server", "GRANT_HEADER",
           "NOTIFICATION_OPTIONS"]

log = logging.getLogger("jitgate.mcp.server")

GRANT_HEADER = "x-jitgate-grant"
NOTIFICATION_OPTIONS = NotificationOptions(tools_changed=True)


class GatewayPort(Protocol):
    """What the MCP edge needs of `gateway.pipeline.Gateway`."""

    @property
    def policy(self) -> Any: ...

    clock: Any

    async def authorize(self, call: ToolCall, *, tool_changed: bool = False,
                        invalid_arguments: str | None = None,
                        durable_later: bool = False, token: bool = True) -> Any: ...

    async def refuse(self, call: ToolCall, code: str, reason: str) -> Any: ...

    async def report(self, principal: Principal, decision_id: str, outcome: CallOutcome) -> None: ...

    async def complete(self, principal: Principal, decision_id: str,
                       outcome: CallOutcome) -> None: ...

    async def request_grant(self, principal: Principal, req: GrantRequest) -> Grant: ...

    async def get_grant(self, principal: Principal, grant_id: str) -> Grant: ...

    async def release_grant(self, principal: Principal, grant_id: str) -> Grant: ...

    async def check_tool_pin(self, tool: str, fingerprint: str) -> bool: ...

    async def record_tool_changed(self, tool: str, old: str, new: str) -> None: ...

    def on_grant_change(self, callback: Callable[[str, GrantStatus], Any]) -> None: ...

    async def authenticate(self, bearer: str) -> Principal | None: ...


@dataclass(slots=True)
class _Caller:
    principal: Principal
    grant_id: str | None
    key: str


_NO_SCHEMA: dict[str, Any] = {}
_MAY_HAVE_RUN = "It may not have run; check before retrying."
_UNAUTHENTICATED = "unauthenticated: the agent key is not valid (unknown, disabled or expired)"


class McpGateway:
    """The handlers and per-session state behind `build_mcp_server`."""

    def __init__(self, gateway: GatewayPort, upstreams: UpstreamManager, *,
                 pins: PinChecker | None = None, principal: Principal | None = None,
                 grant_id: str | None = None, key: str | None = None) -> None:
        """Over stdio, `key` (re-authenticated on every request) or a fixed `principal` is
        the caller, with `grant_id`; over HTTP, the bearer token of each request."""
        self.gateway = gateway
        self.upstreams = upstreams
        self.pins: PinChecker = pins or GatewayPins(gateway)
        self._stdio_principal = principal
        self._stdio_key = key
        self._stdio_grant = grant_id
        self.sessions = Sessions()
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self.catalog = UpstreamCatalog(upstreams, self._caller)
        self._schemas = SchemaChecks()
        self._own = GrantTools(gateway, lambda: gateway.clock.now())
        gateway.on_grant_change(self._grant_changed)
        upstreams.set_tools_changed_callback(self.tools_changed)

    # -- who is calling -----------------------------------------------------------------

    async def _stdio_caller(self) -> Principal | None:
        if self._stdio_key is None:
            return self._stdio_principal
        try:  # a key disabled since the start is refused from its next request on
            return await self.gateway.authenticate(self._stdio_key)
        except Exception as exc:  # noqa: BLE001 - an authenticator failure is "not authenticated"
            log.warning("could not authenticate the stdio key (%s)", type(exc).__name__)
            return None

    async def _caller(self, ctx: Any) -> _Caller:
        principal = principal_from_access_token(get_access_token())
        stdio = principal is None
        if stdio:
            principal = await self._stdio_caller()
        if principal is None:
            raise MCPError(t.INVALID_REQUEST, _UNAUTHENTICATED)
        request = getattr(ctx, "request", None)
        headers = getattr(request, "headers", None)
        session_id = headers.get("mcp-session-id") if headers is not None else None
        key = f"{principal.id}:{session_id or '-'}"
        header_grant = headers.get(GRANT_HEADER) if headers is not None else None
        if header_grant:
            grant_id: str | None = header_grant
        elif self.sessions.is_bound(key):
            grant_id = self.sessions.bound(key)
        else:
            grant_id = self._stdio_grant if stdio else None
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS and ctx.session is not None:
            self.sessions.seen(key, ctx.session, grant_id)
        return _Caller(principal, grant_id, key)

    async def _grant(self, caller: _Caller) -> Grant | None:
        if not caller.grant_id:
            return None
        try:
            grant = await self.gateway.get_grant(caller.principal, caller.grant_id)
        except Exception:  # noqa: BLE001 - unknown or foreign grant: show nothing extra
            return None
        status = grant.effective_status(self.gateway.clock.now())
        return grant if status is GrantStatus.ACTIVE else None

    # -- list-changed --------------------------------------------------------------------

    async def tools_changed(self, grant_id: str | None = None) -> None:
        await self.bus.publish(ToolsListChanged())
        await self.sessions.notify_tools_changed(grant_id)

    async def _grant_changed(self, grant_id: str, status: GrantStatus) -> None:
        await self.tools_changed(grant_id)

    # -- tools ---------------------------------------------------------------------------

    def _visible(self, name: str, grant: Grant | None, baseline: list[Any]) -> bool:
        if grant is not None and matches_scope(grant, name):
            return True
        return any(item.covers_tool(name) for item in baseline)

    async def _pinned(self, rt: RoutedTool) -> bool:
        """True if the tool's definition is the pinned one (a new tool is pinned now); a tool
        whose pin cannot be checked is not shown either."""
        try:
            return (await self.pins.check(rt.public_name, rt.tool)).ok
        except Exception as exc:  # noqa: BLE001 - fail closed: not listed
            log.warning("pin check failed for %s (%s)", rt.public_name, type(exc).__name__)
            return False

    async def list_tools(self, ctx: Any, params: t.PaginatedRequestParams | None
                         ) -> t.ListToolsResult:
        caller = await self._caller(ctx)
        grant = await self._grant(caller)
        routed = await self.upstreams.tools()
        baseline = baseline_patterns(self.gateway.policy, caller.principal)
        visible = [rt.public_definition() for rt in routed
                   if self._visible(rt.public_name, grant, baseline) and await self._pinned(rt)]
        ceiling = ceiling_patterns(self.gateway.policy, caller.principal)
        own = own_tool_definitions(ceiling, [rt.public_name for rt in routed])
        return t.ListToolsResult(tools=[*visible, *own])

    async def _bind(self, caller: _Caller, grant_id: str | None) -> None:
        self.sessions.bind(caller.key, grant_id)
        await self.tools_changed(grant_id)

    async def call_tool(self, ctx: Any, params: t.CallToolRequestParams) -> t.CallToolResult:
        caller = await self._caller(ctx)
        name, args = params.name, dict(params.arguments or {})
        if name in OWN_TOOLS:
            return await self._own.run(name, caller.principal, args, caller.grant_id,
                                       lambda g: self._bind(caller, g))
        try:
            routed = await self.upstreams.find_tool(name)
        except UpstreamUnavailable as exc:
            return await self._edge_refusal(
                ctx, caller, name, args, "upstream_unavailable",
                f"the server behind {name} is not reachable ({exc.why})",
                f"The server behind {name} is not reachable right now ({exc.why}). "
                "Try again later.")
        if routed is None:
            return await self._edge_refusal(
                ctx, caller, name, args, "unknown_tool", f"no tool named {name!r}",
                f"There is no tool named {name!r}. Call tools/list to see the tools you may use.")
        return await self._authorized_call(ctx, caller, routed, args)

    def _call(self, ctx: Any, caller: _Caller, name: str, args: dict[str, Any],
              annotations: dict[str, Any] | None = None) -> ToolCall:
        request_id = getattr(ctx, "request_id", None)
        return ToolCall(agent=caller.principal, tool=name, arguments=args,
                        grant_id=caller.grant_id,
                        call_id=str(request_id) if request_id is not None else None,
                        session_id=caller.key, annotations=annotations or {})

    async def _edge_refusal(self, ctx: Any, caller: _Caller, name: str, args: dict[str, Any],
                            code: str, reason: str, message: str) -> t.CallToolResult:
        """A refusal before policy can judge (unknown tool, upstream down), audited all the same."""
        auth = await self.gateway.refuse(self._call(ctx, caller, name, args), code, reason)
        decision = auth.decision
        if decision.code != code:  # the audit write failed: say so, with the gateway's code
            return decision_refusal(decision)
        return refusal(code, message, decision_id=decision.decision_id)

    async def _authorized_call(self, ctx: Any, caller: _Caller, routed: RoutedTool,
                               args: dict[str, Any]) -> t.CallToolResult:
        name = routed.public_name
        # The decision is committed before the call is forwarded; its fsync runs while the
        # upstream works, and nothing reaches the client before it is on stable storage. The
        # upstream is reached over JITGate's own connection, so the call's credential is its
        # lease alone: no bearer token is signed that nobody could present. A cancellation
        # (the client cancelled or went away) waits for the decision, then stops the forward,
        # where the outcome is recorded (`cancelled`) and the lease released.
        try:
            pin = await self.pins.check(name, routed.tool)
            problem = self._schemas.error(routed.tool.input_schema or _NO_SCHEMA, args)
            call = self._call(ctx, caller, name, args, self.upstreams.annotations_of(routed.tool))
            with anyio.CancelScope(shield=True):
                auth = await self.gateway.authorize(call, tool_changed=not pin.ok,
                                                    invalid_arguments=problem,
                                                    durable_later=True, token=False)
        except StoreUnavailable:  # the pin store
            return await self._edge_refusal(
                ctx, caller, name, args, "store_unavailable", "the state store is unavailable",
                f"JITGate could not check the call to {name} (its store is unavailable). "
                "Try again later.")
        except Exception:  # noqa: BLE001 - logged here, never shown to the client
            log.exception("could not decide on a call to %s", name)
            return await self._edge_refusal(
                ctx, caller, name, args, "internal_error", "the gateway could not decide",
                f"The call to {name} failed inside JITGate. Do not retry it unchanged.")
        answer = await self._forward(caller, routed, args, auth)
        if not await durable_or_not(auth):
            return decision_refusal(unrecorded(auth.decision))
        return answer

    async def _forward(self, caller: _Caller, routed: RoutedTool, args: dict[str, Any],
                       auth: Any) -> t.CallToolResult:
        decision = auth.decision
        if not decision.allowed:
            return decision_refusal(decision)
        name, decision_id = routed.public_name, decision.decision_id
        allowed = f"The call was allowed but the server behind {name}"
        try:
            result = await routed.upstream.call_tool(routed.tool.name, args)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._complete(caller, decision_id,
                                     CallOutcome(decision_id, ok=False, error="cancelled"))
            raise
        except UpstreamUnavailable as exc:
            return await self._failed(caller, decision_id, "upstream_unavailable",
                                      f"{allowed} failed ({exc.why}). {_MAY_HAVE_RUN}")
        except MCPError as exc:
            return await self._failed(
                caller, decision_id, f"upstream_error:{exc.code}",
                f"{allowed} answered with an error (code {exc.code}). {_MAY_HAVE_RUN}",
                code="upstream_error")
        except Exception:
            log.exception("upstream call failed for %s", name)
            return await self._failed(caller, decision_id, "internal_error",
                                      "The call failed inside JITGate.")
        await self._complete(caller, decision_id,
                             CallOutcome(decision_id, ok=not result.is_error,
                                         output=outcome_output(result),
                                         error="tool_error" if result.is_error else None))
        return result

    async def _failed(self, caller: _Caller, decision_id: str, error: str, message: str = "",
                      *, code: str | None = None) -> t.CallToolResult:
        """An allowed call that did not complete: its outcome is recorded as failed (`error`)
        and the client gets a refusal (`code`, by default `error`) with the decision id."""
        await self._complete(caller, decision_id, CallOutcome(decision_id, ok=False, error=error))
        return refusal(code or error, message, decision_id=decision_id)

    async def _complete(self, caller: _Caller, decision_id: str, outcome: CallOutcome) -> None:
        """Drift sees the output now; the durable record follows right after the answer."""
        try:
            await self.gateway.report(caller.principal, decision_id, outcome)
        except Exception:  # noqa: BLE001 - the answer is already decided; never lose it here
            log.exception("could not record the outcome of %s", decision_id)

    def build(self, name: str = "jitgate", version: str = "0.1.0") -> Server:
        handlers: dict[str, Any] = {"on_list_tools": self.list_tools,
                                    "on_call_tool": self.call_tool,
                                    "on_subscriptions_listen": self.listen}
        server: Server = Server(name, version=version,
                                instructions="JITGate authorizes every tool call. Declare your "
                                             "task with jitgate_request_grant before you work.",
                                **handlers)
        server.jitgate = self  # type: ignore[attr-defined]
        self.register_upstream_capabilities(server)
        return server

    def register_upstream_capabilities(self, server: Server) -> None:
        """Serve resources/prompts only if a connected upstream has them (capabilities follow
        the registered handlers). Call again once the upstreams are connected."""
        self.catalog.register(server)


def build_mcp_server(gateway: GatewayPort, upstreams: UpstreamManager, *,
                     pins: PinChecker | None = None, principal: Principal | None = None,
                     grant_id: str | None = None, key: str | None = None) -> Server:
    """The MCP server for `jitgate serve` (HTTP) or, with a key (or a fixed principal),
    `jitgate mcp` (stdio)."""
    return McpGateway(gateway, upstreams, pins=pins, principal=principal, grant_id=grant_id,
                      key=key).build()
