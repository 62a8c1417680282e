"""JITGate as an MCP server: fronts the upstreams and authorizes every `tools/call`.

One low-level `Server` serves both protocol eras over stdio and streamable HTTP. Tool names
and arguments are always taken from the JSON-RPC body, never from `Mcp-*` headers. Policy
outcomes are tool results with `is_error=True` (see results.py), never protocol errors.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

import jsonschema
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

from .auth import principal_from_access_token
from .grant_tools import (OWN_TOOLS, GrantTools, baseline_patterns, ceiling_patterns,
                          matches_scope, own_tool_definitions)
from .pinning import GatewayPins, PinChecker
from .results import decision_refusal, outcome_output, refusal, strip_meta
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


class _SchemaChecks:
    """Compiled argument validators, one per upstream schema object.

    Building a jsonschema validator costs more than the rest of the MCP edge per call; the
    schema dicts live as long as the upstream's cached tool list, so the validator is kept
    with (and checked against) the very dict it was built from.
    """

    _MAX = 4096

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[dict[str, Any], Any]] = {}

    def _validator(self, schema: dict[str, Any]) -> Any:
        hit = self._by_id.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        try:
            cls = jsonschema.validators.validator_for(schema,
                                                      default=jsonschema.Draft202012Validator)
            validator: Any = cls(schema)
        except jsonschema.exceptions.SchemaError:
            validator = None  # the upstream's schema is broken: let the upstream judge
        if len(self._by_id) >= self._MAX:
            self._by_id.clear()
        self._by_id[id(schema)] = (schema, validator)
        return validator

    def error(self, schema: dict[str, Any], args: dict[str, Any]) -> str | None:
        """A one-line summary of the first schema violation (paths and keywords, never values)."""
        validator = self._validator(schema)
        if validator is None:
            return None
        try:
            if validator.is_valid(args):
                return None
            error = jsonschema.exceptions.best_match(validator.iter_errors(args))
        except jsonschema.exceptions.SchemaError:
            return None
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"argument {where} fails the tool's schema ({error.validator})"


def _encode_cursor(index: int, cursor: str | None) -> str:
    return base64.urlsafe_b64encode(json.dumps([index, cursor]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    try:
        index, inner = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(index), inner
    except (ValueError, TypeError):
        raise MCPError(t.INVALID_PARAMS, "invalid cursor") from None


class McpGateway:
    """The handlers and per-session state behind `build_mcp_server`."""

    def __init__(self, gateway: GatewayPort, upstreams: UpstreamManager, *,
                 pins: PinChecker | None = None, principal: Principal | None = None,
                 grant_id: str | None = None) -> None:
        self.gateway = gateway
        self.upstreams = upstreams
        self.pins: PinChecker = pins or GatewayPins(gateway)
        self._stdio_principal = principal
        self._stdio_grant = grant_id
        self._bound: dict[str, str | None] = {}  # caller key -> grant bound in band
        self._sessions: dict[str, tuple[Any, str | None]] = {}  # legacy sessions to notify
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self._resource_routes: dict[str, str] = {}
        self._schemas = _SchemaChecks()
        self._own = GrantTools(gateway, lambda: gateway.clock.now())
        gateway.on_grant_change(self._grant_changed)
        upstreams.set_tools_changed_callback(self.tools_changed)

    # -- who is calling -----------------------------------------------------------------

    def _caller(self, ctx: Any) -> _Caller:
        principal = principal_from_access_token(get_access_token()) or self._stdio_principal
        if principal is None:
            raise MCPError(t.INVALID_REQUEST, "unauthenticated")
        request = getattr(ctx, "request", None)
        headers = getattr(request, "headers", None)
        session_id = headers.get("mcp-session-id") if headers is not None else None
        key = f"{principal.id}:{session_id or '-'}"
        header_grant = headers.get(GRANT_HEADER) if headers is not None else None
        if header_grant:
            grant_id: str | None = header_grant
        elif key in self._bound:
            grant_id = self._bound[key]
        else:
            grant_id = self._stdio_grant if self._stdio_principal is principal else None
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS and ctx.session is not None:
            self._sessions[key] = (ctx.session, grant_id)
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
        for key, (session, bound) in list(self._sessions.items()):
            if grant_id is not None and bound != grant_id and self._bound.get(key) != grant_id:
                continue
            try:
                await session.send_tool_list_changed()
            except Exception:  # noqa: BLE001 - a gone session is forgotten
                self._sessions.pop(key, None)

    async def _grant_changed(self, grant_id: str, status: GrantStatus) -> None:
        await self.tools_changed(grant_id)

    # -- tools ---------------------------------------------------------------------------

    def _visible(self, name: str, grant: Grant | None, baseline: list[Any]) -> bool:
        if grant is not None and matches_scope(grant, name):
            return True
        return any(item.covers_tool(name) for item in baseline)

    async def list_tools(self, ctx: Any, params: t.PaginatedRequestParams | None
                         ) -> t.ListToolsResult:
        caller = self._caller(ctx)
        grant = await self._grant(caller)
        routed = await self.upstreams.tools()
        baseline = baseline_patterns(self.gateway.policy, caller.principal)
        visible = [rt.public_definition() for rt in routed
                   if self._visible(rt.public_name, grant, baseline)]
        ceiling = ceiling_patterns(self.gateway.policy, caller.principal)
        own = own_tool_definitions(ceiling, [rt.public_name for rt in routed])
        return t.ListToolsResult(tools=[*visible, *own])

    async def _bind(self, caller: _Caller, grant_id: str | None) -> None:
        self._bound[caller.key] = grant_id
        if caller.key in self._sessions:
            session, _ = self._sessions[caller.key]
            self._sessions[caller.key] = (session, grant_id)
        await self.tools_changed(grant_id)

    async def call_tool(self, ctx: Any, params: t.CallToolRequestParams) -> t.CallToolResult:
        caller = self._caller(ctx)
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
        pin = await self.pins.check(routed.public_name, routed.tool)
        problem = self._schemas.error(routed.tool.input_schema or _NO_SCHEMA, args)
        call = self._call(ctx, caller, routed.public_name, args,
                          self.upstreams.annotations_of(routed.tool))
        # The decision is committed before the call is forwarded; its fsync runs while the
        # upstream works, and nothing reaches the client before it is on stable storage. The
        # upstream is reached over JITGate's own connection, so the call's credential is its
        # lease alone: no bearer token is signed that nobody could present.
        auth = await self.gateway.authorize(call, tool_changed=not pin.ok,
                                            invalid_arguments=problem, durable_later=True,
                                            token=False)
        try:
            answer: t.CallToolResult | MCPError = await self._forward(caller, routed, args, auth)
        except MCPError as exc:
            answer = exc
        if not await durable_or_not(auth):
            return decision_refusal(unrecorded(auth.decision))
        if isinstance(answer, MCPError):
            raise answer
        return answer

    async def _forward(self, caller: _Caller, routed: RoutedTool, args: dict[str, Any],
                       auth: Any) -> t.CallToolResult:
        decision = auth.decision
        if not decision.allowed:
            return decision_refusal(decision)
        upstream_name = routed.tool.name
        try:
            result = await routed.upstream.call_tool(upstream_name, args)
        except UpstreamUnavailable as exc:
            await self._complete_failed(caller, decision.decision_id, "upstream_unavailable")
            return refusal("upstream_unavailable",
                           f"The call was allowed but the server behind {routed.public_name} "
                           f"failed ({exc.why}). It may not have run; check before retrying.",
                           decision_id=decision.decision_id)
        except MCPError as exc:
            await self._complete_failed(caller, decision.decision_id, f"upstream_error:{exc.code}")
            raise
        except Exception:
            log.exception("upstream call failed for %s", routed.public_name)
            await self._complete_failed(caller, decision.decision_id, "internal_error")
            return refusal("internal_error", "The call failed inside JITGate.",
                           decision_id=decision.decision_id)
        await self._complete(caller, decision.decision_id,
                             CallOutcome(decision.decision_id, ok=not result.is_error,
                                         output=outcome_output(result),
                                         error="tool_error" if result.is_error else None))
        return result

    async def _complete_failed(self, caller: _Caller, decision_id: str, error: str) -> None:
        await self._complete(caller, decision_id, CallOutcome(decision_id, ok=False, error=error))

    async def _complete(self, caller: _Caller, decision_id: str, outcome: CallOutcome) -> None:
        """Drift sees the output now; the durable record follows right after the answer."""
        try:
            await self.gateway.report(caller.principal, decision_id, outcome)
        except Exception:  # noqa: BLE001 - the answer is already decided; never lose it here
            log.exception("could not record the outcome of %s", decision_id)

    # -- resources and prompts (forwarded, paginated across upstreams) -------------------

    async def _paged(self, kind: str, cursor: str | None,
                     fetch: Callable[[Any, str | None], Awaitable[Any]]
                     ) -> tuple[int, str, Any, str | None]:
        sources = self.upstreams.with_capability(kind)
        index, inner = _decode_cursor(cursor)
        while index < len(sources):
            ns, up = sources[index]
            try:
                page = await up.request(lambda c: fetch(c, inner))
            except UpstreamUnavailable:
                index, inner = index + 1, None
                continue
            nxt = (_encode_cursor(index, page.next_cursor) if page.next_cursor
                   else _encode_cursor(index + 1, None) if index + 1 < len(sources) else None)
            return index, ns, page, nxt
        return index, "", None, None

    async def list_resources(self, ctx: Any, params: t.PaginatedRequestParams | None
                             ) -> t.ListResourcesResult:
        self._caller(ctx)
        _, ns, page, nxt = await self._paged(
            "resources", params.cursor if params else None,
            lambda c, cur: c.list_resources(cursor=cur))
        if page is None:
            return t.ListResourcesResult(resources=[])
        self._resource_routes.update({r.uri: ns for r in page.resources})
        return t.ListResourcesResult(resources=strip_meta(list(page.resources)), next_cursor=nxt)

    async def list_resource_templates(self, ctx: Any, params: t.PaginatedRequestParams | None
                                      ) -> t.ListResourceTemplatesResult:
        self._caller(ctx)
        _, _, page, nxt = await self._paged(
            "resources", params.cursor if params else None,
            lambda c, cur: c.list_resource_templates(cursor=cur))
        if page is None:
            return t.ListResourceTemplatesResult(resource_templates=[])
        return t.ListResourceTemplatesResult(
            resource_templates=strip_meta(list(page.resource_templates)), next_cursor=nxt)

    async def read_resource(self, ctx: Any, params: t.ReadResourceRequestParams
                            ) -> t.ReadResourceResult:
        self._caller(ctx)
        uri = str(params.uri)
        sources = self.upstreams.with_capability("resources")
        routed = self._resource_routes.get(uri)
        ordered = sorted(sources, key=lambda s: s[0] != routed)
        last: Exception | None = None
        for _, up in ordered:
            try:
                res = await up.request(lambda c: c.read_resource(uri))
                return t.ReadResourceResult(contents=strip_meta(list(res.contents)))
            except (MCPError, UpstreamUnavailable) as exc:
                last = exc
        if isinstance(last, MCPError):
            raise last
        raise MCPError(t.INVALID_PARAMS, f"resource not found: {uri}")

    async def list_prompts(self, ctx: Any, params: t.PaginatedRequestParams | None
                           ) -> t.ListPromptsResult:
        self._caller(ctx)
        _, ns, page, nxt = await self._paged(
            "prompts", params.cursor if params else None,
            lambda c, cur: c.list_prompts(cursor=cur))
        if page is None:
            return t.ListPromptsResult(prompts=[])
        config = self.upstreams.upstreams[ns].config
        prompts = [strip_meta(p).model_copy(update={"name": config.public_name(p.name)})
                   for p in page.prompts]
        return t.ListPromptsResult(prompts=prompts, next_cursor=nxt)

    async def get_prompt(self, ctx: Any, params: t.GetPromptRequestParams) -> t.GetPromptResult:
        self._caller(ctx)
        hit = self.upstreams.split(params.name)
        if hit is None:
            raise MCPError(t.INVALID_PARAMS, f"unknown prompt: {params.name}")
        up, name = hit
        try:
            res = await up.request(lambda c: c.get_prompt(name, params.arguments))
        except UpstreamUnavailable as exc:
            raise MCPError(t.INTERNAL_ERROR, f"upstream_unavailable: {exc.why}") from None
        return t.GetPromptResult(description=res.description,
                                 messages=strip_meta(list(res.messages)))


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
        if self.upstreams.with_capability("resources"):
            server.add_request_handler("resources/list", t.PaginatedRequestParams,
                                       self.list_resources)
            server.add_request_handler("resources/templates/list", t.PaginatedRequestParams,
                                       self.list_resource_templates)
            server.add_request_handler("resources/read", t.ReadResourceRequestParams,
                                       self.read_resource)
        if self.upstreams.with_capability("prompts"):
            server.add_request_handler("prompts/list", t.PaginatedRequestParams,
                                       self.list_prompts)
            server.add_request_handler("prompts/get", t.GetPromptRequestParams, self.get_prompt)


def build_mcp_server(gateway: GatewayPort, upstreams: UpstreamManager, *,
                     pins: PinChecker | None = None, principal: Principal | None = None,
                     grant_id: str | None = None) -> Server:
    """The MCP server for `jitgate serve` (HTTP) or, with a principal, `jitgate mcp` (stdio)."""
    return McpGateway(gateway, upstreams, pins=pins, principal=principal,
                      grant_id=grant_id).build()
