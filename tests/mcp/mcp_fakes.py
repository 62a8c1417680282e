"""A small stand-in for gateway.pipeline.Gateway with the same MCP-facing methods.

Decides from the grant's scope (tool globs, `prefix` constraints on arguments) and records
every decision and outcome, so the MCP edge can be tested end to end against real peers.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.clock import FakeClock
from gateway.digest import args_digest
from gateway.errors import GatewayError
from gateway.grants import GrantRequest
from gateway.ids import new_id
from gateway.model import (CallOutcome, Decision, Effect, Grant, GrantStatus, Principal, Role,
                           ScopeItem, ToolCall)


@dataclass
class Authorization:
    decision: Decision
    credential: Any = None


@dataclass
class _Item:
    tool: str

    def covers_tool(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.tool)


@dataclass
class _Role:
    baseline: tuple
    ceiling: tuple


class _Policy:
    def __init__(self, baseline: list[str], ceiling: list[str]) -> None:
        self._role = _Role(tuple(_Item(x) for x in baseline), tuple(_Item(x) for x in ceiling))

    def role(self, name: str) -> _Role | None:
        return self._role if name == "agent" else None


@dataclass
class FakeGateway:
    clock: FakeClock = field(default_factory=FakeClock)
    keys: dict[str, Principal] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    review_tools: set[str] = field(default_factory=set)
    baseline: list[str] = field(default_factory=lambda: ["time.*"])
    ceiling: list[str] = field(default_factory=lambda: ["fs.*", "every.*", "time.*"])
    _listeners: list[Callable[..., Any]] = field(default_factory=list)

    @property
    def policy(self) -> _Policy:
        return _Policy(self.baseline, self.ceiling)

    async def authenticate(self, bearer: str) -> Principal | None:
        return self.keys.get(bearer)

    def on_grant_change(self, cb: Callable[..., Any]) -> None:
        self._listeners.append(cb)

    async def _changed(self, g: Grant) -> None:
        for cb in self._listeners:
            await cb(g.grant_id, g.status)

    async def request_grant(self, principal: Principal, req: GrantRequest) -> Grant:
        for item in req.scope:
            if not any(fnmatch.fnmatchcase(item["tool"], c) for c in self.ceiling):
                raise GatewayError("scope_exceeds_ceiling", "beyond the ceiling")
        now = self.clock.now()
        g = Grant(grant_id=new_id("grt"), agent_id=principal.id, objective=req.objective,
                  scope=tuple(ScopeItem(i["tool"], i.get("args", {})) for i in req.scope),
                  tier="low", approval="auto", status=GrantStatus.ACTIVE, created_at=now,
                  ttl_s=req.ttl_s, expires_at=now + req.ttl_s, requested_by=principal.id)
        self.grants[g.grant_id] = g
        self.audit.append({"type": "grant.approved", "grant_id": g.grant_id})
        await self._changed(g)
        return g

    async def get_grant(self, principal: Principal, grant_id: str) -> Grant:
        g = self.grants.get(grant_id)
        if g is None:
            raise GatewayError("grant_not_found")
        if g.agent_id != principal.id:
            raise GatewayError("forbidden")
        return g

    async def release_grant(self, principal: Principal, grant_id: str) -> Grant:
        g = (await self.get_grant(principal, grant_id)).evolve(status=GrantStatus.REVOKED,
                                                               revoked_reason="released")
        self.grants[grant_id] = g
        await self._changed(g)
        return g

    async def revoke(self, grant_id: str) -> None:
        g = self.grants[grant_id].evolve(status=GrantStatus.REVOKED)
        self.grants[grant_id] = g
        await self._changed(g)

    async def check_tool_pin(self, tool: str, fingerprint: str) -> bool:
        return self.pins.setdefault(tool, fingerprint) == fingerprint

    async def record_tool_changed(self, tool: str, old: str, new: str) -> None:
        self.audit.append({"type": "tool.changed", "tool": tool, "seen": new})

    def _verdict(self, call: ToolCall, tool_changed: bool, invalid: str | None
                 ) -> tuple[Effect, str, str]:
        if invalid:
            return Effect.DENY, "invalid_arguments", invalid
        if tool_changed:
            return Effect.DENY, "tool_changed", "the tool's definition changed"
        if call.tool in self.review_tools:
            return Effect.REVIEW, "review_required", "a reviewer must approve"
        if any(fnmatch.fnmatchcase(call.tool, b) for b in self.baseline):
            return Effect.ALLOW, "allowed", "baseline"
        g = self.grants.get(call.grant_id or "")
        if g is None:
            return Effect.DENY, "no_grant", "no grant"
        if g.effective_status(self.clock.now()) is not GrantStatus.ACTIVE:
            return Effect.DENY, f"grant_{g.effective_status(self.clock.now()).value}", "grant"
        for item in g.scope:
            if fnmatch.fnmatchcase(call.tool, item.tool):
                for arg, cons in item.args.items():
                    if not str(call.arguments.get(arg, "")).startswith(cons["prefix"]):
                        return (Effect.DENY, "argument_out_of_scope",
                                f"{arg} is outside {cons['prefix']}")
                return Effect.ALLOW, "allowed", f"grant {g.grant_id}"
        return Effect.DENY, "tool_not_in_scope", f"{call.tool} is not in the grant"

    async def authorize(self, call: ToolCall, *, tool_changed: bool = False,
                        invalid_arguments: str | None = None) -> Authorization:
        effect, code, reason = self._verdict(call, tool_changed, invalid_arguments)
        d = Decision(decision_id=new_id("dec"), effect=effect, code=code, reasons=(reason,),
                     rule_ids=("fake",), policy_revision="r1", tool=call.tool,
                     agent_id=call.agent.id, args_digest=args_digest(call.arguments),
                     grant_id=call.grant_id,
                     approval_id=new_id("apr") if effect is Effect.REVIEW else None)
        self.audit.append({"type": "call.decided", "decision_id": d.decision_id,
                           "tool": call.tool, "code": code, "reasons": [reason],
                           "annotations": dict(call.annotations)})
        return Authorization(d)

    async def complete(self, principal: Principal, decision_id: str,
                       outcome: CallOutcome) -> None:
        self.audit.append({"type": "call.completed", "decision_id": decision_id,
                           "ok": outcome.ok, "error": outcome.error})


AGENT = Principal(id="agent-1", role=Role.AGENT, name="agent one")
