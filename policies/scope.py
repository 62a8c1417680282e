"""Grant scopes, baselines and ceilings: tools (name or glob) with argument constraints."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Sequence

from policies.conditions import (
    ConditionError,
    Constraint,
    compile_constraint,
    parse_key,
    resolve_tokens,
)
from policies.patterns import compile_tool_pattern, is_tool_glob

__all__ = [
    "CompiledScopeItem",
    "compile_scope",
    "compile_scope_item",
    "scope_covers",
    "scope_within",
]

_ITEM_KEYS = frozenset({"tool", "args"})
_MISSING = object()


@dataclass(frozen=True)
class CompiledScopeItem:
    """One tool (exact name or fnmatch glob, '*' also matches dots) and its argument constraints."""

    tool: str
    args: Mapping[str, Constraint]
    _rx: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _keys: tuple[tuple[str, tuple[str, ...], Constraint], ...] = field(
        default=(), repr=False, compare=False
    )

    def covers_tool(self, tool: str) -> bool:
        if self._rx is None:
            return tool == self.tool
        return self._rx.match(tool) is not None

    def check(self, tool: str, arguments: Mapping[str, Any]) -> str | None:
        """None when the tool and every argument constraint match; else the failing key."""
        if not self.covers_tool(tool):
            return ""
        plain = type(arguments) is dict
        for key, tokens, constraint in self._keys:
            if plain and len(tokens) == 1:
                value = arguments.get(tokens[0], _MISSING)
                if value is _MISSING or not constraint.test(value):
                    return key
                continue
            found, value = resolve_tokens(arguments, tokens)
            if not found or not constraint.test(value):
                return key
        return None

    def gap(self, requested: "CompiledScopeItem") -> str | None:
        """None when `requested` ⊆ self; "" when the tool pattern is wider; else the arg key."""
        if not self._tool_within(requested.tool):
            return ""
        req = {tokens: c for _, tokens, c in requested._keys}
        for key, tokens, constraint in self._keys:
            mine = req.get(tokens)
            if mine is None or not mine.implies(constraint):
                return key
        return None

    def implied_by(self, requested: "CompiledScopeItem") -> bool:
        """requested ⊆ self."""
        return self.gap(requested) is None

    def _tool_within(self, pattern: str) -> bool:
        if not is_tool_glob(pattern):
            return self.covers_tool(pattern)
        if pattern == self.tool:
            return True
        if self._rx is None:
            return False
        head = self.tool[:-1]
        if self.tool.endswith("*") and not is_tool_glob(head):
            # "fs.*" contains every pattern that starts with the literal "fs."
            return pattern.startswith(head)
        return False

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": {k: c.as_dict() for k, c in self.args.items()}}


def compile_scope_item(spec: Any) -> CompiledScopeItem:
    if isinstance(spec, CompiledScopeItem):
        return spec
    if not isinstance(spec, Mapping) and hasattr(spec, "as_dict"):
        spec = spec.as_dict()  # gateway.model.ScopeItem and friends
    if not isinstance(spec, Mapping):
        raise ConditionError("invalid_scope", "a scope item is a mapping {tool, args}")
    extra = set(spec) - _ITEM_KEYS
    if extra:
        raise ConditionError("invalid_scope", f"unknown scope item field {sorted(map(str, extra))[0]!r}")
    tool = spec.get("tool")
    if not isinstance(tool, str) or not tool.strip() or len(tool) > 256:
        raise ConditionError("invalid_scope", "a scope item needs a tool name or glob", "tool")
    raw_args = spec.get("args") or {}
    if not isinstance(raw_args, Mapping):
        raise ConditionError("invalid_scope", "scope item args must be a mapping", "args")
    args: dict[str, Constraint] = {}
    keys = []
    seen: dict[tuple[str, ...], str] = {}
    for key, cspec in raw_args.items():
        try:
            tokens = parse_key(key)
            constraint = compile_constraint(cspec)
        except ConditionError as exc:
            raise ConditionError(exc.code, exc.message, f"args.{key}") from None
        if tokens in seen:
            raise ConditionError("invalid_scope", f"argument {key!r} constrained twice", f"args.{key}")
        seen[tokens] = key
        args[key] = constraint
        keys.append((key, tokens, constraint))
    return CompiledScopeItem(tool, args, compile_tool_pattern(tool), tuple(keys))


def compile_scope(items: Sequence[Mapping[str, Any]]) -> tuple[CompiledScopeItem, ...]:
    """Compile a scope (list of items); raises ConditionError (invalid_scope, unknown_operator...)."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise ConditionError("invalid_scope", "a scope is a list of items")
    out = []
    for i, spec in enumerate(items):
        try:
            out.append(compile_scope_item(spec))
        except ConditionError as exc:
            raise ConditionError(exc.code, exc.message, f"[{i}].{exc.path}".rstrip(".")) from None
    return tuple(out)


def scope_covers(
    scope: Sequence[CompiledScopeItem], tool: str, arguments: Mapping[str, Any]
) -> tuple[bool, str, str]:
    """(ok, code, detail): tool_not_in_scope, or argument_out_of_scope with the arg key."""
    failing: str | None = None
    for item in scope:
        miss = item.check(tool, arguments)
        if miss is None:
            return True, "", ""
        if miss and failing is None:
            failing = miss
    if failing is None:
        return False, "tool_not_in_scope", tool
    return False, "argument_out_of_scope", failing


def scope_within(
    requested: Sequence[CompiledScopeItem], ceiling: Sequence[CompiledScopeItem]
) -> tuple[bool, str]:
    """Every requested item is implied by some ceiling item; else the first too-broad item."""
    for item in requested:
        detail: str | None = None
        for top in ceiling:
            gap = top.gap(item)
            if gap is None:
                break
            if gap and detail is None:
                detail = gap
        else:
            return False, f"{item.tool}: {detail}" if detail else item.tool
    return True, ""
