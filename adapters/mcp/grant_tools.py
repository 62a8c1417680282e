"""JITGate's own MCP tools: an agent declares its task and asks for a grant in band.

`jitgate_request_grant` (objective, scope, ttl_s), `jitgate_grant_status`,
`jitgate_release_grant`. Arguments are checked against the tools' input schemas first
(`invalid_arguments`). Errors come back as readable tool results with their code, like
policy refusals, and never with an exception's text; a new active grant becomes the session's
grant.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import Any, Awaitable, Callable, Iterable, Protocol

import mcp.types as t

from gateway.errors import GatewayError
from gateway.grants import GrantRequest
from gateway.model import Grant, Principal
from gateway.ports import StoreUnavailable

from .results import refusal
from .schema_checks import SchemaChecks

__all__ = ["OWN_TOOLS", "REQUEST_GRANT", "GRANT_STATUS", "RELEASE_GRANT", "role_name",
           "ceiling_patterns", "baseline_patterns", "own_tool_definitions", "GrantTools"]

REQUEST_GRANT = "jitgate_request_grant"
GRANT_STATUS = "jitgate_grant_status"
RELEASE_GRANT = "jitgate_release_grant"
OWN_TOOLS = frozenset({REQUEST_GRANT, GRANT_STATUS, RELEASE_GRANT})
_MAX_LISTED = 60

log = logging.getLogger("jitgate.mcp.grant_tools")

_SCOPE_SCHEMA: dict[str, Any] = {
    "type": "array", "minItems": 1,
    "items": {"type": "object", "required": ["tool"], "additionalProperties": False,
              "properties": {
                  "tool": {"type": "string", "description": "tool name or glob"},
                  "args": {"type": "object", "description":
                           "argument name or JSON pointer -> constraint, e.g. "
                           "{\"path\": {\"prefix\": \"/workspace/\"}}"}}},
}
_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["objective", "scope", "ttl_s"], "additionalProperties": False,
    "properties": {
        "objective": {"type": "string", "minLength": 1},
        "scope": _SCOPE_SCHEMA,
        "ttl_s": {"type": "integer", "minimum": 1},
        "call_budget": {"type": "integer", "minimum": 1},
        "reason": {"type": "string"},
        "ticket": {"type": "string"},
        "justification": {"type": "string"}},
}
_GRANT_ID_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"grant_id": {"type": "string"}},
}
_SCHEMAS = {REQUEST_GRANT: _REQUEST_SCHEMA, GRANT_STATUS: _GRANT_ID_SCHEMA,
            RELEASE_GRANT: _GRANT_ID_SCHEMA}


def role_name(principal: Principal) -> str:
    explicit = principal.attributes.get("policy_role") if principal.attributes else None
    return str(explicit) if explicit else principal.role.value


def _role_items(policy: Any, principal: Principal, which: str) -> list[Any]:
    try:
        role = policy.role(role_name(principal))
        return list(getattr(role, which)) if role is not None else []
    except Exception:  # noqa: BLE001 - no policy view means nothing extra is shown
        return []


def ceiling_patterns(policy: Any, principal: Principal) -> list[Any]:
    return _role_items(policy, principal, "ceiling")


def baseline_patterns(policy: Any, principal: Principal) -> list[Any]:
    return _role_items(policy, principal, "baseline")


def _describe_ceiling(items: list[Any], tool_names: Iterable[str]) -> str:
    names = sorted({n for n in tool_names if any(i.covers_tool(n) for i in items)})
    if not names:
        return "Your role may not request any upstream tool."
    shown = ", ".join(names[:_MAX_LISTED]) + (" ..." if len(names) > _MAX_LISTED else "")
    return f"Tools you may ask for (your ceiling): {shown}."


def own_tool_definitions(ceiling: list[Any], tool_names: Iterable[str]) -> list[t.Tool]:
    return [
        t.Tool(
            name=REQUEST_GRANT,
            description=("Declare what you are trying to do and ask for just-in-time access to "
                         "the tools you need. Low-risk requests are granted at once; others wait "
                         "for a human. " + _describe_ceiling(ceiling, tool_names)),
            input_schema=_REQUEST_SCHEMA,
            annotations=t.ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                          open_world_hint=False),
        ),
        t.Tool(
            name=GRANT_STATUS,
            description="Show the state of your current grant (or of grant_id).",
            input_schema=_GRANT_ID_SCHEMA,
            annotations=t.ToolAnnotations(read_only_hint=True, open_world_hint=False),
        ),
        t.Tool(
            name=RELEASE_GRANT,
            description="Give up your current grant (or grant_id) when the task is done.",
            input_schema=_GRANT_ID_SCHEMA,
            annotations=t.ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                          open_world_hint=False),
        ),
    ]


class _GrantPort(Protocol):
    async def request_grant(self, principal: Principal, req: GrantRequest) -> Grant: ...

    async def get_grant(self, principal: Principal, grant_id: str) -> Grant: ...

    async def release_grant(self, principal: Principal, grant_id: str) -> Grant: ...


def _grant_result(grant: Grant, now: float, text: str) -> t.CallToolResult:
    public = grant.public(now)
    return t.CallToolResult(content=[t.TextContent(type="text", text=text)],
                            structured_content={"code": "ok", "grant": public})


class GrantTools:
    """Runs the three own tools for one caller; `bind(grant_id)` makes it the session's grant."""

    def __init__(self, gateway: _GrantPort, now: Callable[[], float]) -> None:
        self._gateway = gateway
        self._now = now
        self._schemas = SchemaChecks()

    async def run(self, name: str, principal: Principal, args: dict[str, Any],
                  current_grant: str | None,
                  bind: Callable[[str | None], Awaitable[None]]) -> t.CallToolResult:
        problem = self._schemas.error(_SCHEMAS[name], args)
        if problem is not None:
            return refusal("invalid_arguments",
                           f"JITGate: {problem}. See the input schema of {name}.")
        try:
            return await self._run(name, principal, args, current_grant, bind)
        except GatewayError as exc:
            return refusal(exc.code, f"JITGate: {exc.message} ({exc.code}).",
                           extra={"details": exc.details} if exc.details else None)
        except StoreUnavailable:
            return refusal("store_unavailable", "JITGate: the grant store is unavailable "
                           "(store_unavailable). Try again later.")
        except Exception:  # noqa: BLE001 - logged here, never shown to the client
            log.exception("%s failed", name)
            return refusal("internal_error", f"JITGate: {name} failed inside JITGate "
                           "(internal_error).")

    async def _run(self, name: str, principal: Principal, args: dict[str, Any],
                   current_grant: str | None,
                   bind: Callable[[str | None], Awaitable[None]]) -> t.CallToolResult:
        if name == REQUEST_GRANT:
            return await self._request(principal, args, bind)
        grant_id = str(args.get("grant_id") or current_grant or "")
        if not grant_id:
            return refusal("grant_not_found", "You hold no grant in this session. "
                           "Ask for one with jitgate_request_grant.")
        if name == GRANT_STATUS:
            grant = await self._gateway.get_grant(principal, grant_id)
            status = grant.effective_status(self._now())
            return _grant_result(grant, self._now(),
                                 f"Grant {grant.grant_id} is {status.value}"
                                 f" (expires at {grant.expires_at:.0f}).")
        grant = await self._gateway.release_grant(principal, grant_id)
        if grant_id == current_grant:
            await bind(None)
        return _grant_result(grant, self._now(), f"Grant {grant.grant_id} was released.")

    async def _request(self, principal: Principal, args: dict[str, Any],
                       bind: Callable[[str | None], Awaitable[None]]) -> t.CallToolResult:
        req = GrantRequest(objective=str(args.get("objective", "")),
                           scope=list(args.get("scope") or []),
                           ttl_s=int(args.get("ttl_s", 0)),
                           call_budget=args.get("call_budget"),
                           reason=str(args.get("reason", "")),
                           ticket=str(args.get("ticket", "")),
                           justification=str(args.get("justification", "")))
        grant = await self._gateway.request_grant(principal, req)
        await bind(grant.grant_id)
        status = grant.effective_status(self._now()).value
        if status == "active":
            text = (f"Grant {grant.grant_id} is active for {grant.ttl_s} s. The tools in its "
                    "scope are now listed; go ahead.")
        else:
            text = (f"Grant {grant.grant_id} is {status}: a reviewer must approve it at /ui or "
                    f"POST /v1/grants/{grant.grant_id}/approve. Check with jitgate_grant_status "
                    "and retry your calls once it is active.")
        return _grant_result(grant, self._now(), text)


def matches_scope(grant: Grant, tool: str) -> bool:
    return any(fnmatch.fnmatchcase(tool, item.tool) for item in grant.scope)
