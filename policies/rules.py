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
from operator import attrgetter
from typing import Any, Callable
from zoneinfo import ZoneInfo

from policies.conditions import Constraint, resolve_tokens
from policies.patterns import compile_tool_pattern
from policies.prefilter import RulePlan, build_plan

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
_MISSING = object()
_TIER = attrgetter("tier")
_ROLE = attrgetter("role")
_AGENT_ID = attrgetter("agent_id")
_ARGS = attrgetter("arguments")
_ATTRS = attrgetter("attributes")
_ANNOT = attrgetter("annotations")


def _value_check(get: Callable[[Any], Any], test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda ctx: test(get(ctx))


def _field_check(
    get: Callable[[Any], Any], tokens: tuple[str, ...], test: Callable[[Any], bool]
) -> Callable[[Any], bool]:
    """A constraint on one addressed value; a missing value never satisfies it."""
    if len(tokens) == 1:
        key = tokens[0]

        def check_key(ctx: Any) -> bool:
            doc = get(ctx)
            if type(doc) is dict:
                value = doc.get(key, _MISSING)
                return value is not _MISSING and test(value)
            found, value = resolve_tokens(doc, tokens)
            return found and test(value)

        return check_key

    def check_pointer(ctx: Any) -> bool:
        found, value = resolve_tokens(get(ctx), tokens)
        return found and test(value)

    return check_pointer



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

    _check: Callable[[RuleContext], bool] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _hit: RuleHit | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tool_pattern is not None:
            object.__setattr__(self, "_tool_rx", compile_tool_pattern(self.tool_pattern))
        object.__setattr__(self, "_check", self._compile_check())
        object.__setattr__(self, "_hit", RuleHit(self.id, self.effect, self.code, self.message))

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
        return self._check(ctx)

    def _compile_check(self) -> Callable[[RuleContext], bool]:
        """One closure over just the parts this rule has: the hot path of evaluate()."""
        checks: list[Callable[[RuleContext], bool]] = []
        for getter, constraint in (
            (_TIER, self.tier), (_ROLE, self.agent_role), (_AGENT_ID, self.agent_id),
        ):  # fmt: skip
            if constraint is not None:
                checks.append(_value_check(getter, constraint.test))
        for getter, items in ((_ARGS, self.args), (_ATTRS, self.attributes), (_ANNOT, self.annotations)):
            checks.extend(_field_check(getter, tokens, c.test) for tokens, c in items)
        if self.time is not None:
            contains = self.time.contains
            checks.append(lambda ctx: contains(ctx.now))
        if self.unless is not None:
            unless = self.unless
            checks.append(lambda ctx: not unless.matches(ctx))
        if not checks:
            return lambda ctx: True
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            first, second = checks
            return lambda ctx: first(ctx) and second(ctx)
        every = tuple(checks)

        def check_all(ctx: RuleContext) -> bool:
            for check in every:
                if not check(ctx):
                    return False
            return True

        return check_all

    def matches(self, ctx: RuleContext) -> bool:
        return self.matches_tool(ctx.tool) and self.matches_rest(ctx)

    def single_arg_constraint(self) -> tuple[str, Constraint] | None:
        """(argument name, constraint) when that is the rule's whole condition besides the tool."""
        if len(self.args) != 1 or len(self.args[0][0]) != 1:
            return None
        others = (self.tier, self.agent_id, self.agent_role, self.time, self.unless)
        if any(o is not None for o in others) or self.attributes or self.annotations:
            return None
        return self.args[0][0][0], self.args[0][1]

    def hit(self) -> RuleHit:
        return self._hit  # type: ignore[return-value]


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
        self._cache: dict[str, RulePlan] = {}

    def candidates(self, tool: str) -> tuple[CompiledRule, ...]:
        return self.plan(tool).rules

    def plan(self, tool: str) -> RulePlan:
        hit = self._cache.get(tool)
        if hit is not None:
            return hit
        idx = set(self._exact.get(tool, ()))
        idx.update(i for i in self._open if self.rules[i].matches_tool(tool))
        plan = build_plan([self.rules[i] for i in sorted(idx)])
        if len(self._cache) >= self._CACHE_MAX:
            self._cache.clear()
        self._cache[tool] = plan
        return plan

    def evaluate(self, ctx: RuleContext) -> list[RuleHit]:
        return self.plan(ctx.tool).evaluate(ctx)
