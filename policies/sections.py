"""Compiling one document's sections, collecting every problem instead of stopping at the first."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from collections.abc import Mapping
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_limit
from pydantic import BaseModel, ValidationError

from policies.conditions import ConditionError, Constraint, compile_constraint, parse_key
from policies.engine import DriftSettings, RateLimitSpec, RoleSpec, TierSpec, ToolSpec, TIER_RANKS
from policies.model import (
    TIER_NAMES,
    DriftModel,
    RateLimitModel,
    RoleModel,
    RuleModel,
    TierModel,
    ToolModel,
    WhenModel,
)
from policies.problems import Problem, loc_to_path
from policies.rules import DAYS, DEFAULT_RULE_CODES, CompiledRule, TimeWindow
from policies.scope import compile_scope

__all__ = ["DocumentSink", "compile_document_sections", "tier_spec"]

M = TypeVar("M", bound=BaseModel)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_APPROVALS_REQUIRED = {"auto": 0, "one_human": 1, "two_humans": 2}


@dataclass
class DocumentSink:
    """What one document contributes, plus its problems."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    tiers: dict[str, tuple[TierSpec, dict]] = field(default_factory=dict)
    tools: list[tuple[ToolSpec, dict, str]] = field(default_factory=list)
    roles: dict[str, tuple[RoleSpec, dict, str]] = field(default_factory=dict)
    rules: list[tuple[CompiledRule, str]] = field(default_factory=list)
    rule_ids: list[tuple[str, str]] = field(default_factory=list)  # every id written, valid or not
    drift: tuple[DriftSettings, dict] | None = None
    rate_limits: list[tuple[RateLimitSpec, str]] = field(default_factory=list)

    def add(self, code: str, message: str, path: str, rule_id: str | None = None) -> None:
        self.problems.append(Problem(self.file, rule_id, code, message, path))


def _pydantic_code(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    last = err["loc"][-1] if err.get("loc") else ""
    if kind == "extra_forbidden":
        return "unknown_field"
    if kind == "missing":
        return "missing_field"
    if kind == "string_pattern_mismatch":
        return {"code": "bad_code", "id": "bad_rule_id"}.get(str(last), "invalid_value")
    return "invalid_value"


def _validate(
    sink: DocumentSink, model: type[M], raw: Any, path: str, rule_id: str | None = None
) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            where = loc_to_path([path, *err["loc"]]) if err["loc"] else path
            where = where.replace(".[", "[")
            sink.add(_pydantic_code(err), err["msg"], where, rule_id)
        return None


def _constraint(
    sink: DocumentSink, spec: Any, path: str, rule_id: str | None
) -> Constraint | None:
    try:
        return compile_constraint(spec)
    except ConditionError as exc:
        sink.add(exc.code, exc.message, path, rule_id)
        return None


def _checks(
    sink: DocumentSink, specs: Mapping[str, Any], path: str, rule_id: str | None
) -> tuple[tuple[tuple[str, ...], Constraint], ...]:
    out = []
    for key, spec in specs.items():
        try:
            tokens = parse_key(key)
        except ConditionError as exc:
            sink.add(exc.code, exc.message, f"{path}.{key}", rule_id)
            continue
        c = _constraint(sink, spec, f"{path}.{key}", rule_id)
        if c is not None:
            out.append((tokens, c))
    return tuple(out)


def tier_spec(name: str, m: TierModel) -> TierSpec:
    breakglass = m.approval == "two_humans"
    return TierSpec(
        name=name,
        rank=TIER_RANKS[name],
        max_ttl_s=m.max_ttl_s,
        approval=m.approval,
        credential_ttl_s=m.credential_ttl_s,
        review_after_use=breakglass or bool(m.review_after_use),
        approvals_required=_APPROVALS_REQUIRED[m.approval],
        requires_justification=breakglass or bool(m.requires_justification),
    )


def _tiers(sink: DocumentSink, raw: Mapping[str, Any]) -> None:
    for name, spec in raw.items():
        path = f"tiers.{name}"
        if name not in TIER_NAMES:
            sink.add("unknown_tier", f"unknown tier {str(name)[:40]!r}", path)
            continue
        m = _validate(sink, TierModel, spec, path)
        if m is None:
            continue
        if m.approval == "two_humans" and False in (m.requires_justification, m.review_after_use):
            sink.add("invalid_tier", "two_humans (break-glass) always needs a justification and a review", path)
            continue
        if m.credential_ttl_s > m.max_ttl_s:
            sink.add("invalid_tier", "credential_ttl_s is longer than max_ttl_s", path)
            continue
        sink.tiers[name] = (tier_spec(name, m), m.model_dump())


def _keys_ok(sink: DocumentSink, keys: list[str], path: str) -> bool:
    ok = True
    for i, key in enumerate(keys):
        try:
            parse_key(key)
        except ConditionError as exc:
            sink.add(exc.code, exc.message, f"{path}[{i}]")
            ok = False
    return ok


def _tools(sink: DocumentSink, raw: list[Any]) -> None:
    for i, spec in enumerate(raw):
        path = f"tools[{i}]"
        m = _validate(sink, ToolModel, spec, path)
        if m is None:
            continue
        if m.tier not in TIER_NAMES:
            sink.add("unknown_tier", f"unknown tier {m.tier[:40]!r}", f"{path}.tier")
            continue
        ok = _keys_ok(sink, m.sensitive_args, f"{path}.sensitive_args")
        if not (_keys_ok(sink, m.redact_args, f"{path}.redact_args") and ok):
            continue
        tool = ToolSpec(
            pattern=m.match,
            tier=m.tier,
            audience=m.audience or "",
            sensitive_args=tuple(m.sensitive_args),
            redact_args=tuple(m.redact_args),
            effect=m.effect,
            untrusted_output=m.untrusted_output,
            credential=m.credential,
        )
        sink.tools.append((tool, m.model_dump(), path))


def _roles(sink: DocumentSink, raw: Mapping[str, Any]) -> None:
    for name, spec in raw.items():
        path = f"roles.{name}"
        m = _validate(sink, RoleModel, spec, path)
        if m is None:
            continue
        ok = True
        if m.max_tier not in TIER_NAMES:
            sink.add("unknown_tier", f"unknown tier {m.max_tier[:40]!r}", f"{path}.max_tier")
            ok = False
        scopes = []
        for part in ("baseline", "ceiling"):
            try:
                scopes.append(compile_scope(getattr(m, part)))
            except ConditionError as exc:
                sink.add(exc.code, exc.message, f"{path}.{part}{exc.path}".replace(".[", "["))
                ok = False
        if ok:
            role = RoleSpec(str(name), m.max_tier, scopes[0], scopes[1], m.approval_after_drift)
            sink.roles[str(name)] = (role, m.model_dump(), path)


def _minutes(sink: DocumentSink, text: str, path: str, rule_id: str) -> int | None:
    if not _HHMM.match(text):
        sink.add("bad_time", f"expected HH:MM, got {text[:20]!r}", path, rule_id)
        return None
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _time(sink: DocumentSink, when: WhenModel, path: str, rid: str) -> TimeWindow | None | bool:
    t = when.time
    if t is None:
        return None
    tz: ZoneInfo | None = None
    try:
        tz = ZoneInfo(t.tz)
    except (ZoneInfoNotFoundError, ValueError):
        sink.add("bad_timezone", f"unknown time zone {t.tz[:60]!r}", f"{path}.tz", rid)
    start = end = None
    if t.between is not None:
        start = _minutes(sink, t.between[0], f"{path}.between[0]", rid)
        end = _minutes(sink, t.between[1], f"{path}.between[1]", rid)
        if start is None or end is None:
            return False
    if tz is None:
        return False
    days = frozenset(DAYS.index(d) for d in t.days) if t.days is not None else None
    return TimeWindow(start, end, days, tz)


def _when(
    sink: DocumentSink, w: WhenModel, wp: str, rid: str, effect: str, code: str, message: str
) -> CompiledRule | None:
    before = len(sink.problems)
    tool_pattern, tool_c = None, None
    if isinstance(w.tool, str):
        tool_pattern = w.tool
    elif w.tool is not None:
        tool_c = _constraint(sink, w.tool, f"{wp}.tool", rid)
    tier = _constraint(sink, w.tier, f"{wp}.tier", rid) if w.tier is not None else None
    aid = arole = None
    attrs: tuple = ()
    if w.agent is not None:
        if w.agent.id is not None:
            aid = _constraint(sink, w.agent.id, f"{wp}.agent.id", rid)
        if w.agent.role is not None:
            arole = _constraint(sink, w.agent.role, f"{wp}.agent.role", rid)
        attrs = _checks(sink, w.agent.attributes, f"{wp}.agent.attributes", rid)
    args = _checks(sink, w.args, f"{wp}.args", rid)
    annotations = _checks(sink, w.annotations, f"{wp}.annotations", rid)
    window = _time(sink, w, f"{wp}.time", rid)
    if len(sink.problems) != before or window is False:
        return None
    return CompiledRule(
        id=rid,
        effect=effect,
        code=code,
        message=message,
        source=sink.file,
        tool_pattern=tool_pattern,
        tool_constraint=tool_c,
        tier=tier,
        args=args,
        agent_id=aid,
        agent_role=arole,
        attributes=attrs,
        annotations=annotations,
        time=window if isinstance(window, TimeWindow) else None,
    )


def _rules(sink: DocumentSink, raw: list[Any]) -> None:
    for i, spec in enumerate(raw):
        path = f"rules[{i}]"
        rid = spec.get("id") if isinstance(spec, Mapping) else None
        rid = rid if isinstance(rid, str) else None
        if rid is not None:
            sink.rule_ids.append((rid, path))
        m = _validate(sink, RuleModel, spec, path, rid)
        if m is None:
            continue
        code = m.code or DEFAULT_RULE_CODES[m.effect]
        rule = _when(sink, m.when, f"{path}.when", m.id, m.effect, code, m.message)
        unless = None
        if m.unless is not None:
            unless = _when(sink, m.unless, f"{path}.unless", m.id, m.effect, code, m.message)
            if unless is None:
                continue
        if rule is None:
            continue
        if unless is not None:
            rule = replace(rule, unless=unless)
        sink.rules.append((rule, path))


def _drift(sink: DocumentSink, raw: Any) -> None:
    m = _validate(sink, DriftModel, raw, "drift")
    if m is not None:
        weights = {str(k): float(v) for k, v in m.weights.items()}
        sink.drift = (DriftSettings(float(m.threshold), weights, m.window_s, m.extra), m.model_dump())


def _rate_limits(sink: DocumentSink, raw: list[Any]) -> None:
    for i, spec in enumerate(raw):
        path = f"rate_limits[{i}]"
        m = _validate(sink, RateLimitModel, spec, path)
        if m is None:
            continue
        try:
            parse_limit(m.limit)
        except ValueError:
            sink.add("bad_rate_limit", f"cannot parse limit {m.limit[:40]!r}", f"{path}.limit")
            continue
        sink.rate_limits.append((RateLimitSpec(m.id, m.per, m.limit, m.tool), path))


_SECTIONS: tuple[tuple[str, type, Callable[[DocumentSink, Any], None]], ...] = (
    ("tiers", dict, _tiers),
    ("tools", list, _tools),
    ("roles", dict, _roles),
    ("rules", list, _rules),
    ("rate_limits", list, _rate_limits),
)


def compile_document_sections(sink: DocumentSink, doc: Mapping[str, Any]) -> None:
    """Compile every well-typed section of `doc` into `sink` (top-level checks are the caller's)."""
    for name, kind, fn in _SECTIONS:
        raw = doc.get(name)
        if isinstance(raw, kind):
            fn(sink, raw)
    if isinstance(doc.get("drift"), dict):
        _drift(sink, doc["drift"])
