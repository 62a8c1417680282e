"""Policy test cases (YAML) and `explain`: the functions behind `jitgate policy test|explain`.

A case file::

    policy: [default.yaml, devtools.yaml]   # optional: library pack names or paths (relative
                                            # to the case file); default: the default packs
    cases:
      - name: agent lists its workspace without a grant
        call: {tool: fs.list_directory, arguments: {path: /workspace}}
        agent: {id: a1, role: agent, attributes: {team: dev}}
        time: "2026-11-26T10:00:00Z"        # ISO 8601 or epoch seconds; default 2026-01-05 12:00 UTC
        annotations: {}
        grant: null                         # or a scope: [{tool: fs.read_file, args: {...}}]
        expect: {effect: allow, code: allowed, rule_ids: [baseline:agent]}   # rule_ids optional
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policies.conditions import ConditionError
from policies.engine import PolicySet, RuleContext, verdict
from policies.loader import LIBRARY_DIR, PolicyLoadError, default_pack_paths, load_policy_files
from policies.scope import CompiledScopeItem, compile_scope, scope_covers

__all__ = ["CaseResult", "run_policy_tests", "run_case_file", "explain", "DEFAULT_CASE_TIME"]

DEFAULT_CASE_TIME = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc).timestamp()  # a Monday


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Call(_Strict):
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class _Agent(_Strict):
    id: str = "agent-1"
    role: str = "agent"
    attributes: dict[str, Any] = Field(default_factory=dict)


class _Expect(_Strict):
    effect: Literal["allow", "deny", "review"]
    code: str | None = None
    rule_ids: list[str] | None = None


class _Case(_Strict):
    name: str = Field(min_length=1)
    call: _Call
    agent: _Agent = Field(default_factory=_Agent)
    time: datetime | float | int | None = None
    annotations: dict[str, Any] = Field(default_factory=dict)
    grant: list[Any] | None = None
    expect: _Expect


class _CaseFile(_Strict):
    policy: list[str] | None = None
    cases: list[Any]


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    expected_effect: str
    expected_code: str | None
    effect: str
    code: str
    rule_ids: tuple[str, ...] = ()
    message: str = ""

    @property
    def expected(self) -> str:
        return f"{self.expected_effect or '?'}/{self.expected_code or '*'}"

    @property
    def actual(self) -> str:
        return f"{self.effect}/{self.code}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _epoch(value: datetime | float | int | None) -> float:
    if value is None:
        return DEFAULT_CASE_TIME
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    return float(value)


def _resolve_policy(names: Sequence[str], base: Path) -> list[Path]:
    out = []
    for name in names:
        p = Path(name)
        if not p.is_absolute():
            local = base / p
            p = local if local.exists() or not (LIBRARY_DIR / p).exists() else LIBRARY_DIR / p
        out.append(p)
    return out


def _fail(file: str, name: str, why: str, code: str = "invalid_case") -> CaseResult:
    return CaseResult(file, name, False, "", None, "error", code, (), why)


def run_case_file(path: Path, policy_paths: Sequence[str | Path] | None = None) -> list[CaseResult]:
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc = _CaseFile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        return [_fail(file, "", f"cannot read case file: {type(exc).__name__}")]
    if policy_paths is not None:
        paths = [Path(p) for p in policy_paths]
    elif doc.policy is not None:
        paths = _resolve_policy(doc.policy, path.parent)
    else:
        paths = default_pack_paths()
    try:
        policy = load_policy_files(paths)
    except PolicyLoadError as exc:
        return [_fail(file, "", f"policy does not load: {exc.problems[0]}", "invalid_policy")]
    return [_run_case(policy, file, i, raw_case) for i, raw_case in enumerate(doc.cases)]


def _run_case(policy: PolicySet, file: str, index: int, raw: Any) -> CaseResult:
    name = raw.get("name", f"case {index}") if isinstance(raw, Mapping) else f"case {index}"
    try:
        case = _Case.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        return _fail(file, str(name), f"invalid case at {err['loc']}: {err['msg']}")
    try:
        scope = compile_scope(case.grant) if case.grant is not None else None
    except ConditionError as exc:
        return _fail(file, case.name, f"invalid grant scope: {exc.code}: {exc.message}")
    ctx = RuleContext(
        agent_id=case.agent.id,
        role=case.agent.role,
        attributes=case.agent.attributes,
        tool=case.call.tool,
        arguments=case.call.arguments,
        tier=policy.tool_spec(case.call.tool).tier,
        annotations=case.annotations,
        now=_epoch(case.time),
    )
    effect, code, rule_ids, reasons = verdict(policy, ctx, scope)
    want = case.expect
    ok = effect == want.effect and (want.code is None or code == want.code)
    if want.rule_ids is not None:
        ok = ok and list(rule_ids) == want.rule_ids
    msg = "" if ok else f"expected {want.effect}/{want.code or '*'}, got {effect}/{code} ({'; '.join(reasons)})"
    return CaseResult(file, case.name, ok, want.effect, want.code, effect, code, rule_ids, msg)


def run_policy_tests(
    case_dir: str | Path, policy_paths: Sequence[str | Path] | None = None
) -> list[CaseResult]:
    """Run every *.yaml case file under `case_dir` (or the one file given), in name order."""
    root = Path(case_dir)
    files = [root] if root.is_file() else sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")])
    if not files:
        return [_fail(str(root), "", "no case files found", "no_cases")]
    results: list[CaseResult] = []
    for f in files:
        results.extend(run_case_file(f, policy_paths))
    return results


def explain(
    policy: PolicySet,
    ctx: RuleContext,
    grant_scope: Sequence[CompiledScopeItem | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Why a call would be allowed, reviewed or denied: every step, plus human-readable lines."""
    spec = policy.tool_spec(ctx.tool)
    if not ctx.tier:
        ctx = dataclasses.replace(ctx, tier=spec.tier)
    scope = compile_scope(grant_scope) if grant_scope is not None else None
    tier = policy.tiers[spec.tier]
    role = policy.role(ctx.role)
    hits = policy.evaluate(ctx)
    effect, code, rule_ids, reasons = verdict(policy, ctx, scope)
    lines = [
        f"policy revision {policy.revision[:12]}",
        f"tool {ctx.tool}: tier {tier.name} (approval {tier.approval}), "
        + (f"mapped by {spec.pattern!r}" if policy.is_mapped(ctx.tool) else "unmapped (unmapped tools are privileged)"),
    ]
    out: dict[str, Any] = {
        "revision": policy.revision,
        "tool": ctx.tool,
        "tier": tier.name,
        "tool_spec": {"match": spec.pattern, "effect": spec.effect, "audience": spec.audience},
        "role": role.name if role else None,
        "matched_rules": [dataclasses.asdict(h) for h in hits],
    }
    if role is None:
        lines.append(f"role {ctx.role!r} is not defined by the policy")
    else:
        base_ok = scope_covers(role.baseline, ctx.tool, ctx.arguments)[0]
        ceil = scope_covers(role.ceiling, ctx.tool, ctx.arguments)
        out["baseline"] = {"covered": base_ok}
        out["ceiling"] = {"within": ceil[0], "code": ceil[1], "detail": ceil[2]}
        lines.append(f"role {role.name}: baseline {'covers' if base_ok else 'does not cover'} the call; "
                     f"ceiling {'allows' if ceil[0] else 'does not allow'} it (max tier {role.max_tier})")  # fmt: skip
    if scope is None:
        out["scope"] = {"given": False}
        lines.append("no grant")
    else:
        ok, scode, detail = scope_covers(scope, ctx.tool, ctx.arguments)
        out["scope"] = {"given": True, "covered": ok, "code": scode, "detail": detail}
        lines.append("grant scope covers the call" if ok else f"grant scope: {scode} ({detail})")
    for h in hits:
        lines.append(f"rule {h.rule_id} matches: {h.effect} ({h.code})" + (f": {h.message}" if h.message else ""))
    if not hits:
        lines.append("no rule matches")
    lines.append(f"=> {effect} ({code})" + (f" by {', '.join(rule_ids)}" if rule_ids else ""))
    out.update(effect=effect, code=code, rule_ids=list(rule_ids), reasons=list(reasons), lines=lines)
    return out
