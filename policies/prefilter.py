"""A sound shortcut for the common case of many rules that each test one string argument.

Rules whose whole condition (beyond the tool) is one pattern-like constraint on one top-level
argument are grouped by argument; each group gets one combined regex that matches whenever any
member could. When no group's regex matches the call, none of their rules can match and only the
other rules are evaluated; otherwise every rule is evaluated as usual. So the result is always the
same as evaluating every rule, only faster when nothing matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policies.conditions import BoundedRegex, Constraint, RegexLimit
from policies.patterns import compile_path_glob, lexical_path

__all__ = ["pattern_source", "RulePlan", "build_plan"]


def pattern_source(constraint: Constraint) -> str | None:
    """A regex matching (at least) every string the constraint accepts, None when unsure."""
    op, operand = constraint.op, constraint.operand
    if op == "prefix":
        return re.escape(operand) + "(?s:.*)"
    if op == "glob":
        return "(?s:" + compile_path_glob(operand).pattern + ")"
    if op == "regex":
        try:
            rx = re.compile(operand)
        except re.error:
            return None
        if rx.groups or rx.flags != re.UNICODE:  # groups could shift backrefs; flags can't nest
            return None
        return "(?:" + operand + ")"
    if op == "eq" and type(constraint.as_dict()["eq"]) is str:
        return re.escape(constraint.as_dict()["eq"])
    if op == "in" and all(type(v) is str for v in operand):
        return "(?:" + "|".join(re.escape(v) for v in operand) + ")"
    return None


@dataclass(frozen=True)
class RulePlan:
    rules: tuple[Any, ...]  # every candidate rule, in file order
    groups: tuple[tuple[str, BoundedRegex], ...]  # (argument name, combined regex)
    rest: tuple[Any, ...]  # the candidates outside every group, in file order

    def evaluate(self, ctx: Any) -> list[Any]:
        if self.groups:
            args = ctx.arguments
            if type(args) is dict:
                for key, rx in self.groups:
                    value = args.get(key)
                    if isinstance(value, str) and _may_match(rx, value):
                        break  # some member may match: evaluate every rule
                else:
                    return [r._hit for r in self.rest if r._check(ctx)]
        return [r._hit for r in self.rules if r._check(ctx)]


def _may_match(rx: BoundedRegex, value: str) -> bool:
    """Whether a member may match `value`: the value as given or as the path it names (globs
    judge that), and "maybe" whenever the combined regex cannot be run within its limits (the
    members themselves then fail closed)."""
    try:
        if rx.fullmatch(value):
            return True
        path = lexical_path(value) if "/" in value else value
        return path != value and rx.fullmatch(path)
    except RegexLimit:
        return True


def build_plan(rules: Sequence[Any]) -> RulePlan:
    by_key: dict[str, list[tuple[int, str]]] = {}
    for i, rule in enumerate(rules):
        single = rule.single_arg_constraint()
        if single is None:
            continue
        key, constraint = single
        source = pattern_source(constraint)
        if source is not None:
            by_key.setdefault(key, []).append((i, source))
    grouped: set[int] = set()
    groups = []
    for key, members in by_key.items():
        if len(members) < 2:
            continue
        try:
            rx = BoundedRegex("|".join(source for _, source in members))
        except Exception:  # a combination `re` or `regex` refuses: no shortcut for it
            continue
        groups.append((key, rx))
        grouped.update(i for i, _ in members)
    rest = tuple(r for i, r in enumerate(rules) if i not in grouped)
    return RulePlan(tuple(rules), tuple(groups), rest)
