"""Small builders shared by the drift tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway.model import Grant, GrantStatus, Principal, Role, ScopeItem, ToolCall
from policies.engine import DriftSettings, RateLimitSpec, ToolSpec

AGENT = Principal("agent-1", Role.AGENT, "tester")


def grant(objective: str, tools: list[str] | None = None, *, gid: str = "grt_1",
          scope: tuple[ScopeItem, ...] | None = None, parent: str | None = None) -> Grant:
    items = scope if scope is not None else tuple(ScopeItem(t) for t in (tools or ["*"]))
    return Grant(grant_id=gid, agent_id=AGENT.id, objective=objective, scope=items, tier="low",
                 approval="auto", status=GrantStatus.ACTIVE, created_at=0.0, ttl_s=3600,
                 expires_at=1e12, requested_by=AGENT.id, parent_grant_id=parent)


def call(tool: str, args: dict[str, Any] | None = None, *, gid: str | None = "grt_1",
         call_id: str | None = None) -> ToolCall:
    return ToolCall(agent=AGENT, tool=tool, arguments=args or {}, grant_id=gid, call_id=call_id)


def spec(tool: str, *, effect: str = "write", untrusted: bool = False,
         sensitive: tuple[str, ...] = (), tier: str = "low") -> ToolSpec:
    return ToolSpec(pattern=tool, tier=tier, audience=tool, sensitive_args=sensitive,
                    effect=effect, untrusted_output=untrusted)


def policy(*, threshold: float = 1.0, weights: dict[str, float] | None = None,
           window_s: int = 3600, extra: dict[str, Any] | None = None,
           rate_limits: list[RateLimitSpec] | None = None) -> Any:
    return SimpleNamespace(
        drift=DriftSettings(threshold=threshold, weights=weights or {}, window_s=window_s,
                            extra=extra or {}),
        rate_limits=tuple(rate_limits or ()),
    )
