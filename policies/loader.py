"""Load policy documents into one immutable PolicySet, reporting every problem.

Several documents merge: tools, rules and rate limits concatenate in load order; a tier, role,
exact tool mapping or drift section may appear in several documents only with identical content.
Tiers that no document defines take the built-in defaults (those of `library/default.yaml`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import yaml

from policies.engine import DriftSettings, PolicySet, RoleSpec, TierSpec, ToolSpec
from policies.model import TIER_NAMES, DocumentModel, TierModel
from policies.problems import PolicyLoadError, Problem
from policies.sections import DocumentSink, _validate, compile_document_sections, tier_spec

__all__ = [
    "Problem",
    "PolicyLoadError",
    "LIBRARY_DIR",
    "DEFAULT_TIERS",
    "DEFAULT_DRIFT",
    "load_policy_files",
    "load_policy_texts",
    "default_pack_paths",
    "load_default",
    "check_files",
    "check_texts",
    "expand_paths",
]

LIBRARY_DIR = Path(__file__).resolve().parent / "library"
DEFAULT_PACKS = ("default.yaml", "devtools.yaml", "payments.yaml")

DEFAULT_TIERS: dict[str, TierSpec] = {
    "low": tier_spec("low", TierModel(max_ttl_s=3600, approval="auto", credential_ttl_s=30)),
    "privileged": tier_spec(
        "privileged", TierModel(max_ttl_s=900, approval="one_human", credential_ttl_s=15)
    ),
    "critical": tier_spec(
        "critical", TierModel(max_ttl_s=300, approval="two_humans", credential_ttl_s=10)
    ),
}
DEFAULT_DRIFT = DriftSettings(
    threshold=1.0,
    window_s=3600,
    weights={"scope": 0.34, "provenance": 1.0, "retry": 0.2, "semantic": 0.5, "judge": 1.0,
             "tool_changed": 1.0},  # fmt: skip
)
MAX_DOCUMENT_BYTES = 2_000_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys (YAML keeps the last) and refuses aliases."""

    duplicates: list[tuple[str, int]]

    def compose_node(self, parent: Any, index: Any) -> Any:
        # aliases can expand a small file into a huge document (billion laughs): refuse them
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    self.duplicates.append((str(key)[:60], key_node.start_mark.line + 1))
                seen.add(key)
            except TypeError:
                pass
        return super().construct_mapping(node, deep=deep)


def _parse(name: str, text: str) -> tuple[Any, list[Problem]]:
    if len(text.encode("utf-8", "replace")) > MAX_DOCUMENT_BYTES:
        return None, [Problem(name, None, "invalid_document", "document too large", "")]
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        why = getattr(exc, "problem", None) or "cannot parse YAML"
        return None, [Problem(name, None, "yaml_syntax", f"{line}{why}", "")]
    finally:
        loader.dispose()
    problems = [
        Problem(name, None, "duplicate_key", f"line {line}: key {key!r} appears twice", "")
        for key, line in loader.duplicates
    ]
    return doc, problems


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _merge(sinks: list[DocumentSink]) -> tuple[list[Problem], dict[str, Any]]:
    problems: list[Problem] = []
    tiers: dict[str, tuple[TierSpec, dict, str]] = {}
    tools: list[ToolSpec] = []
    exact: dict[str, tuple[dict, str]] = {}
    roles: dict[str, tuple[RoleSpec, dict, str]] = {}
    rules, rule_ids = [], {}
    rate_limits, limit_ids = [], set()
    drift: tuple[DriftSettings, dict, str] | None = None
    for s in sinks:
        for name, (spec, raw) in s.tiers.items():
            if name in tiers and tiers[name][1] != raw:
                msg = f"tier {name} already defined differently in {tiers[name][2]}"
                problems.append(Problem(s.file, None, "conflicting_tier", msg, f"tiers.{name}"))
            tiers.setdefault(name, (spec, raw, s.file))
        for spec, raw, path in s.tools:
            if spec.pattern in exact:
                if exact[spec.pattern][0] != raw:
                    msg = f"tool {spec.pattern!r} already mapped differently in {exact[spec.pattern][1]}"
                    problems.append(Problem(s.file, None, "conflicting_tool", msg, path))
                continue
            exact[spec.pattern] = (raw, s.file)
            tools.append(spec)
        for name, (spec, raw, path) in s.roles.items():
            if name in roles and roles[name][1] != raw:
                msg = f"role {name} already defined differently in {roles[name][2]}"
                problems.append(Problem(s.file, None, "conflicting_role", msg, path))
            roles.setdefault(name, (spec, raw, s.file))
        for rid, path in s.rule_ids:
            if rid in rule_ids:
                msg = f"rule id {rid[:80]!r} already used in {rule_ids[rid]}"
                problems.append(Problem(s.file, rid, "duplicate_rule_id", msg, path))
            rule_ids.setdefault(rid, s.file)
        rules.extend(rule for rule, _ in s.rules)
        for limit, path in s.rate_limits:
            if limit.id in limit_ids:
                msg = f"rate limit id {limit.id!r} used twice"
                problems.append(Problem(s.file, None, "duplicate_rate_limit_id", msg, path))
                continue
            limit_ids.add(limit.id)
            rate_limits.append(limit)
        if s.drift is not None:
            if drift is not None and drift[1] != s.drift[1]:
                msg = f"drift settings already defined differently in {drift[2]}"
                problems.append(Problem(s.file, None, "conflicting_drift", msg, "drift"))
            elif drift is None:
                drift = (*s.drift, s.file)
    merged = {
        "tiers": {n: tiers[n][0] if n in tiers else DEFAULT_TIERS[n] for n in TIER_NAMES},
        "tools": tools,
        "roles": {n: r[0] for n, r in roles.items()},
        "rules": rules,
        "drift": drift[0] if drift else DEFAULT_DRIFT,
        "rate_limits": rate_limits,
    }
    return problems, merged


def _compile(docs: Sequence[tuple[str, str]]) -> tuple[PolicySet | None, list[Problem]]:
    problems: list[Problem] = []
    sinks: list[DocumentSink] = []
    canon: list[Any] = []
    for name, text in docs:
        doc, found = _parse(name, text)
        problems.extend(found)
        if found and doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(Problem(name, None, "invalid_document", "a policy is a YAML mapping", ""))
            continue
        sink = DocumentSink(name)
        _validate(sink, DocumentModel, doc, "")
        compile_document_sections(sink, doc)
        problems.extend(sink.problems)
        sinks.append(sink)
        canon.append(doc)
    merge_problems, merged = _merge(sinks)
    problems.extend(merge_problems)
    if problems:
        return None, problems
    revision = hashlib.sha256(_canonical(canon).encode("utf-8")).hexdigest()
    policy = PolicySet(revision=revision, sources=[n for n, _ in docs], **merged)
    return policy, []


def load_policy_texts(docs: Sequence[tuple[str, str]]) -> PolicySet:
    """(name, YAML text) pairs → PolicySet; raises PolicyLoadError listing every problem."""
    policy, problems = _compile(docs)
    if policy is None:
        raise PolicyLoadError(problems)
    return policy


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a directory stands for its *.yaml / *.yml files in name order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            out.append(p)
    return out


def _read(paths: Sequence[str | Path]) -> tuple[list[tuple[str, str]], list[Problem]]:
    docs, problems = [], []
    for p in expand_paths(paths):
        try:
            docs.append((str(p), p.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            problems.append(Problem(str(p), None, "file_not_found", why, ""))
    return docs, problems


def load_policy_files(paths: Sequence[str | Path]) -> PolicySet:
    docs, problems = _read(paths)
    if not docs and not problems:
        problems.append(Problem("", None, "file_not_found", "no policy files given", ""))
    if problems:
        _, more = _compile(docs)
        raise PolicyLoadError(problems + more)
    return load_policy_texts(docs)


def check_files(paths: Sequence[str | Path]) -> list[Problem]:
    """Every problem in these files (empty when they load), for `jitgate policy check`."""
    try:
        load_policy_files(paths)
    except PolicyLoadError as exc:
        return exc.problems
    return []


def check_texts(docs: Sequence[tuple[str, str]]) -> list[Problem]:
    return _compile(docs)[1]


def default_pack_paths() -> list[Path]:
    """The composable library packs loaded by default: default, devtools and payments."""
    return [LIBRARY_DIR / name for name in DEFAULT_PACKS]


def load_default() -> PolicySet:
    return load_policy_files(default_pack_paths())
