"""The compiled, immutable policy set and the pure `verdict()` that decide() builds on."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType
from collections.abc import Mapping
from typing import Any, Sequence

from policies.conditions import parse_key
from policies.patterns import compile_tool_pattern, is_tool_glob
from policies.rules import CompiledRule, RuleContext, RuleHit, RuleIndex
from policies.scope import CompiledScopeItem, scope_covers

__all__ = [
    "TierSpec",
    "ToolSpec",
    "RoleSpec",
    "RuleContext",
    "RuleHit",
    "DriftSettings",
    "RateLimitSpec",
    "PolicySet",
    "verdict",
    "TIER_RANKS",
    "UNMAPPED_TIER",
    "REDACTED",
]

TIER_RANKS: Mapping[str, int] = MappingProxyType({"low": 0, "privileged": 1, "critical": 2})
UNMAPPED_TIER = "privileged"
REDACTED = "[redacted]"


@dataclass(frozen=True)
class TierSpec:
    name: str
    rank: int
    max_ttl_s: int
    approval: str  # auto | one_human | two_humans
    credential_ttl_s: int
    review_after_use: bool
    approvals_required: int
    requires_justification: bool


@dataclass(frozen=True)
class ToolSpec:
    pattern: str
    tier: str
    audience: str
    sensitive_args: tuple[str, ...] = ()
    redact_args: tuple[str, ...] = ()
    effect: str = "write"  # read | write | egress
    untrusted_output: bool = False
    credential: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoleSpec:
    name: str
    max_tier: str
    baseline: tuple[CompiledScopeItem, ...]
    ceiling: tuple[CompiledScopeItem, ...]
    approval_after_drift: bool = True


@dataclass(frozen=True)
class DriftSettings:
    threshold: float
    weights: Mapping[str, float]
    window_s: int
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RateLimitSpec:
    id: str
    per: str  # agent | grant | tool
    limit: str  # "limits" syntax, e.g. "20/second"
    tool: str = "*"


def _specificity(pattern: str) -> tuple[int, int]:
    """Longer literal text first, then longer pattern (exact names are looked up before)."""
    literal = sum(1 for c in pattern if c not in "*?[]")
    return (literal, len(pattern))


def _literal_head(pattern: str) -> str:
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return pattern


class PolicySet:
    """Immutable and compiled once; build it with `policies.loader`."""

    __slots__ = (
        "revision", "sources", "tiers", "roles", "drift", "rate_limits", "rules",
        "_exact_tools", "_glob_tools", "_index", "_tool_cache", "_ceiling_cache", "_frozen",
    )  # fmt: skip

    def __init__(
        self,
        *,
        revision: str,
        sources: Sequence[str],
        tiers: Mapping[str, TierSpec],
        tools: Sequence[ToolSpec],
        roles: Mapping[str, RoleSpec],
        rules: Sequence[CompiledRule],
        drift: DriftSettings,
        rate_limits: Sequence[RateLimitSpec],
    ) -> None:
        s = object.__setattr__
        s(self, "revision", revision)
        s(self, "sources", tuple(sources))
        s(self, "tiers", MappingProxyType(dict(tiers)))
        s(self, "roles", MappingProxyType(dict(roles)))
        s(self, "drift", drift)
        s(self, "rate_limits", tuple(rate_limits))
        s(self, "rules", tuple(rules))
        exact = {t.pattern: t for t in tools if not is_tool_glob(t.pattern)}
        globs = sorted(
            (t for t in tools if is_tool_glob(t.pattern)),
            key=lambda t: _specificity(t.pattern),
            reverse=True,
        )
        s(self, "_exact_tools", MappingProxyType(exact))
        s(self, "_glob_tools", tuple((t, compile_tool_pattern(t.pattern)) for t in globs))
        s(self, "_index", RuleIndex(self.rules))
        s(self, "_tool_cache", {})
        s(self, "_ceiling_cache", {})
        s(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PolicySet is immutable")

    def __repr__(self) -> str:
        return f"PolicySet(revision={self.revision[:12]!r}, sources={self.sources!r})"

    # ------------------------------------------------------------ tools and tiers

    def tool_spec(self, tool: str) -> ToolSpec:
        """Exact mapping, else the most specific glob; unmapped → privileged, effect write."""
        spec = self._tool_cache.get(tool)
        if spec is not None:
            return spec
        spec = self._exact_tools.get(tool)
        if spec is None:
            for mapping, rx in self._glob_tools:
                if rx is not None and rx.match(tool):
                    spec = mapping
                    break
        if spec is None:
            spec = ToolSpec(pattern=tool, tier=UNMAPPED_TIER, audience=tool)
        elif not spec.audience:
            spec = ToolSpec(
                spec.pattern, spec.tier, tool, spec.sensitive_args, spec.redact_args,
                spec.effect, spec.untrusted_output, spec.credential,
            )  # fmt: skip
        if len(self._tool_cache) >= 4096:
            self._tool_cache.clear()
        self._tool_cache[tool] = spec
        return spec

    def is_mapped(self, tool: str) -> bool:
        """Whether any tool mapping places `tool` in a tier (else it is privileged by default)."""
        return tool in self._exact_tools or any(
            rx is not None and rx.match(tool) for _, rx in self._glob_tools
        )

    def tier_of(self, tool: str) -> TierSpec:
        return self.tiers[self.tool_spec(tool).tier]

    def tier_for_scope(self, scope: Sequence[CompiledScopeItem]) -> TierSpec:
        """The highest tier any call under `scope` could reach (conservative for globs)."""
        rank = -1
        for item in scope:
            for name in self._tiers_reachable(item):
                rank = max(rank, TIER_RANKS[name])
        if rank < 0:
            return self.tiers["low"]
        return next(t for t in self.tiers.values() if t.rank == rank)

    def _tiers_reachable(self, item: CompiledScopeItem) -> set[str]:
        if not is_tool_glob(item.tool):
            return {self.tool_spec(item.tool).tier}
        found: set[str] = set()
        covered = False
        for name, spec in self._exact_tools.items():
            if item.covers_tool(name):
                found.add(spec.tier)
        head = _literal_head(item.tool)
        for spec, rx in self._glob_tools:  # most specific first
            other = _literal_head(spec.pattern)
            if head.startswith(other) or other.startswith(head):
                found.add(spec.tier)
                if CompiledScopeItem(spec.pattern, {}, rx).implied_by(item):
                    # every name under `item` matches this mapping, so no less specific one
                    # (later in the list) and no default ever applies to it
                    covered = True
                    break
        if not covered:
            found.add(UNMAPPED_TIER)
        return found

    # ------------------------------------------------------------ roles and rules

    def _ceiling_for(
        self, role: RoleSpec, tool: str
    ) -> tuple[bool, tuple[CompiledScopeItem, ...]]:
        """(tool tier within the role's max tier, the ceiling items naming the tool), cached."""
        key = (role.name, tool)
        found = self._ceiling_cache.get(key)
        if found is None:
            tier_ok = TIER_RANKS[self.tool_spec(tool).tier] <= TIER_RANKS.get(role.max_tier, -1)
            found = (tier_ok, tuple(i for i in role.ceiling if i.covers_tool(tool)))
            if len(self._ceiling_cache) >= 4096:
                self._ceiling_cache.clear()
            self._ceiling_cache[key] = found
        return found

    def role(self, name: str) -> RoleSpec | None:
        return self.roles.get(name)

    def evaluate(self, ctx: RuleContext) -> list[RuleHit]:
        """Every matching rule in file order; pure and deterministic."""
        return self._index.evaluate(ctx)

    # ------------------------------------------------------------ audit helpers

    def redact(self, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `arguments` with the tool's redact_args replaced by "[redacted]"."""
        out: dict[str, Any] = dict(arguments)
        keys = self.tool_spec(tool).redact_args
        if not keys:
            return out
        out = copy.deepcopy(out)
        for key in keys:
            _redact_path(out, parse_key(key))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "sources": list(self.sources),
            "tiers": {
                n: {
                    "rank": t.rank, "max_ttl_s": t.max_ttl_s, "approval": t.approval,
                    "credential_ttl_s": t.credential_ttl_s, "approvals_required": t.approvals_required,
                    "requires_justification": t.requires_justification,
                    "review_after_use": t.review_after_use,
                }  # fmt: skip
                for n, t in self.tiers.items()
            },
            "tools": [
                {"match": t.pattern, "tier": t.tier, "effect": t.effect, "audience": t.audience}
                for t in [*self._exact_tools.values(), *(g for g, _ in self._glob_tools)]
            ],
            "unmapped_tier": UNMAPPED_TIER,
            "roles": {
                n: {
                    "max_tier": r.max_tier,
                    "baseline": [i.as_dict() for i in r.baseline],
                    "ceiling": [i.as_dict() for i in r.ceiling],
                }
                for n, r in self.roles.items()
            },
            "rules": [{"id": r.id, "effect": r.effect, "code": r.code} for r in self.rules],
            "rate_limits": [
                {"id": r.id, "per": r.per, "tool": r.tool, "limit": r.limit} for r in self.rate_limits
            ],
            "drift": {"threshold": self.drift.threshold, "window_s": self.drift.window_s,
                      "weights": dict(self.drift.weights)},  # fmt: skip
        }


def _redact_path(doc: Any, tokens: tuple[str, ...]) -> None:
    for tok in tokens[:-1]:
        if isinstance(doc, dict):
            doc = doc.get(tok)
        elif isinstance(doc, list) and tok.isdigit() and int(tok) < len(doc):
            doc = doc[int(tok)]
        else:
            return
    last = tokens[-1]
    if isinstance(doc, dict) and last in doc:
        doc[last] = REDACTED
    elif isinstance(doc, list) and last.isdigit() and int(last) < len(doc):
        doc[int(last)] = REDACTED


_PERMITTED: dict[str, tuple[str, ...]] = {}


def _permitted(source: str) -> tuple[str, ...]:
    reasons = _PERMITTED.get(source)
    if reasons is None:
        reasons = (f"permitted by {source}",)
        if len(_PERMITTED) < 4096:
            _PERMITTED[source] = reasons
    return reasons


def _failed_permit(code: str, role: str) -> str:
    """The id of what refused a call no rule denied: the grant's scope, or the role's baseline
    or ceiling (default deny has an id too, so every decision names what decided it)."""
    if code in ("tool_not_in_scope", "argument_out_of_scope"):
        return "grant_scope"
    if code == "beyond_ceiling":
        return f"ceiling:{role}"
    return f"baseline:{role}"


def verdict(
    policy: PolicySet, ctx: RuleContext, scope: Sequence[CompiledScopeItem] | None
) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """(effect, code, rule_ids, reasons) for one call; pure. See policies/README.md#verdict."""
    hits = policy.evaluate(ctx)
    if not hits:  # the common case, kept short
        source, fail_code, fail_reason = _permit(policy, ctx, scope, policy.roles.get(ctx.role))
        if source is None:
            return "deny", fail_code, (_failed_permit(fail_code, ctx.role),), (fail_reason,)
        return "allow", "allowed", (source,), _permitted(source)
    denies = [h for h in hits if h.effect == "deny"]
    if denies:
        return (
            "deny",
            denies[0].code,
            tuple(h.rule_id for h in denies),
            tuple(f"rule {h.rule_id}: {h.message or h.code}" for h in denies),
        )
    source, fail_code, fail_reason = _permit(policy, ctx, scope, policy.roles.get(ctx.role))
    allows = [h.rule_id for h in hits if h.effect == "allow"]
    if source is None and allows:
        source = allows[0]
    if source is None:
        return "deny", fail_code, (_failed_permit(fail_code, ctx.role),), (fail_reason,)
    reviews = [h for h in hits if h.effect == "review"]
    if reviews:
        return (
            "review",
            reviews[0].code,
            (source, *(h.rule_id for h in reviews)),
            tuple(f"rule {h.rule_id}: {h.message or h.code}" for h in reviews),
        )
    extra = tuple(a for a in allows if a != source)
    return "allow", "allowed", (source, *extra), _permitted(source)


def _permit(
    policy: PolicySet,
    ctx: RuleContext,
    scope: Sequence[CompiledScopeItem] | None,
    role: RoleSpec | None,
) -> tuple[str | None, str, str]:
    """(source, fail_code, fail_reason): grant first, then the role's baseline."""
    fail_code, fail_reason = "no_grant", "no grant, and the role's baseline does not cover the call"
    if role is None:
        fail_reason = f"unknown role {ctx.role!r}"
    if scope is not None:
        ok, code, detail = scope_covers(scope, ctx.tool, ctx.arguments)
        if not ok:
            fail_code = code
            fail_reason = (
                f"tool {ctx.tool} is not in the grant's scope"
                if code == "tool_not_in_scope"
                else f"argument {detail} is outside the grant's scope"
            )
        elif role is not None:
            within, why = _within_ceiling(policy, ctx, role)
            if within:
                return "grant", "", ""
            fail_code, fail_reason = "beyond_ceiling", why
    if role is not None and scope_covers(role.baseline, ctx.tool, ctx.arguments)[0]:
        return f"baseline:{role.name}", "", ""
    return None, fail_code, fail_reason


def _within_ceiling(policy: PolicySet, ctx: RuleContext, role: RoleSpec) -> tuple[bool, str]:
    tier_ok, items = policy._ceiling_for(role, ctx.tool)
    if not tier_ok:
        tier = policy.tool_spec(ctx.tool).tier
        return False, f"tool tier {tier} is above role {role.name}'s max tier {role.max_tier}"
    if not items:
        return False, f"tool {ctx.tool} is beyond role {role.name}'s ceiling"
    ok, _, detail = scope_covers(items, ctx.tool, ctx.arguments)
    if ok:
        return True, ""
    return False, f"argument {detail} is beyond role {role.name}'s ceiling"
