"""Compiled rules: one `when` (tool, tier, args, agent, time, annotations) and an effect.

Every part of `when` must hold for the rule to match; a missing argument, attribute or annotation
does not satisfy its constraint. Rules are indexed by tool so one call only looks at the rules
that can match its tool name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from policies.conditions import Constraint, resolve_tokens
from policies.patterns import compile_tool_pattern

__all__ = [
    "RuleContext",
    "RuleHit",
    "TimeWindow",
    "CompiledRule",
    "RuleIndex",
    "DEFAULT_RULE_CODES",
    "DAYS",
]

DEFAULT_RULE_CODES: Mapping[str, str] = {
    "allow": "allowed",
    "deny": "policy_deny",
    "review": "review_required",
}
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class RuleContext:
    """Everything a rule may look at for one call. `now` is epoch seconds."""

    agent_id: str
    role: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tool: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    tier: str = ""
    annotations: Mapping[str, Any] = field(default_factory=dict)
    now: float = 0.0


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    effect: str
    code: str
    message: str


@dataclass(frozen=True)
class TimeWindow:
    """Minutes of the day [start, end) in `tz` (wraps midnight when start > end), and weekdays."""

    start: int | None
    end: int | None
    days: frozenset[int] | None
    tz: ZoneInfo

    def contains(self, now: float) -> bool:
        local = datetime.fromtimestamp(now, self.tz)
        if self.days is not None and local.weekday() not in self.days:
            return False
        if self.start is None or self.end is None:
            return True
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


_Checks = tuple[tuple[tuple[str, ...], Constraint], ...]


@dataclass(frozen=True)
class CompiledRule:
    id: str
    effect: str
    code: str
    message: str
    source: str
    tool_pattern: str | None = None  # a tool-name pattern (exact or fnmatch glob)
    tool_constraint: Constraint | None = None  # or a constraint on the tool name
    tier: Constraint | None = None
    args: _Checks = ()
    agent_id: Constraint | None = None
    agent_role: Constraint | None = None
    attributes: _Checks = ()
    annotations: _Checks = ()
    time: TimeWindow | None = None
    unless: "CompiledRule | None" = None  # the rule does not match when this matches
    _tool_rx: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tool_pattern is not None:
            object.__setattr__(self, "_tool_rx", compile_tool_pattern(self.tool_pattern))

    def matches_tool(self, tool: str) -> bool:
        if self.tool_pattern is not None:
            if self._tool_rx is None:
                return tool == self.tool_pattern
            return self._tool_rx.match(tool) is not None
        if self.tool_constraint is not None:
            return self.tool_constraint.test(tool)
        return True

    def exact_tools(self) -> tuple[str, ...] | None:
        """The finite set of tool names this rule can match, None when open."""
        if self.tool_pattern is not None and self._tool_rx is None:
            return (self.tool_pattern,)
        c = self.tool_constraint
        if c is not None and c.op == "eq" and isinstance(c.operand, str):
            return (c.operand,)
        if c is not None and c.op == "in":
            return tuple(v for v in c.operand if isinstance(v, str))
        return None

    def matches_rest(self, ctx: RuleContext) -> bool:
        """Everything but the tool name (already filtered by the index)."""
        if self.tier is not None and not self.tier.test(ctx.tier):
            return False
        if self.agent_role is not None and not self.agent_role.test(ctx.role):
            return False
        if self.agent_id is not None and not self.agent_id.test(ctx.agent_id):
            return False
        for tokens, constraint in self.args:
            found, value = resolve_tokens(ctx.arguments, tokens)
            if not found or not constraint.test(value):
                return False
        for tokens, constraint in self.attributes:
            found, value = resolve_tokens(ctx.attributes, tokens)
            if not found or not constraint.test(value):
                return False
        for tokens, constraint in self.annotations:
            found, value = resolve_tokens(ctx.annotations, tokens)
            if not found or not constraint.test(value):
                return False
        if self.time is not None and not self.time.contains(ctx.now):
            return False
        if self.unless is not None and self.unless.matches(ctx):
            return False
        return True

    def matches(self, ctx: RuleContext) -> bool:
        return self.matches_tool(ctx.tool) and self.matches_rest(ctx)

    def hit(self) -> RuleHit:
        return RuleHit(self.id, self.effect, self.code, self.message)


class RuleIndex:
    """Rules by tool: exact names in a dict, open patterns in a list; per-tool cache of both."""

    _CACHE_MAX = 4096

    def __init__(self, rules: tuple[CompiledRule, ...]) -> None:
        self.rules = rules
        self._exact: dict[str, list[int]] = {}
        self._open: list[int] = []
        for i, rule in enumerate(rules):
            names = rule.exact_tools()
            if names is None:
                self._open.append(i)
            else:
                for name in names:
                    self._exact.setdefault(name, []).append(i)
        self._cache: dict[str, tuple[CompiledRule, ...]] = {}

    def candidates(self, tool: str) -> tuple[CompiledRule, ...]:
        hit = self._cache.get(tool)
        if hit is not None:
            return hit
        idx = set(self._exact.get(tool, ()))
        idx.update(i for i in self._open if self.rules[i].matches_tool(tool))
        found = tuple(self.rules[i] for i in sorted(idx))
        if len(self._cache) >= self._CACHE_MAX:
            self._cache.clear()
        self._cache[tool] = found
        return found

    def evaluate(self, ctx: RuleContext) -> list[RuleHit]:
        return [r.hit() for r in self.candidates(ctx.tool) if r.matches_rest(ctx)]
