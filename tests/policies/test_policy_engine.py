"""PolicySet and verdict(): permit sources, deny overrides, review, tiers, time, redaction."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from policies.engine import PolicySet, RuleContext, verdict
from policies.loader import load_policy_texts
from policies.scope import compile_scope

DOC = """
version: 1
tools:
  - {match: "fs.*", tier: privileged}
  - {match: "fs.read_*", tier: low, effect: read}
  - {match: fs.read_file, tier: low, effect: read, audience: "mcp:fs"}
  - {match: "fs.delete*", tier: critical}
  - {match: pay.send, tier: privileged, redact_args: [memo, "/card/number", "/items/1"]}
roles:
  agent:
    max_tier: privileged
    baseline: [{tool: fs.list_directory, args: {path: {path_under: /w}}}]
    ceiling:
      - {tool: "fs.*", args: {path: {path_under: /w}}}
      - {tool: pay.send, args: {amount: {le: 100}}}
rules:
  - {id: no-env, effect: deny, code: secret_file, message: no env, when: {args: {path: {glob: "**/.env"}}}}
  - {id: night, effect: review, code: after_hours, when: {tool: "fs.write_*", time: {between: ["22:00", "06:00"], tz: Europe/Berlin}}}
  - {id: weekend, effect: deny, code: weekend, when: {tool: pay.send, time: {days: [sat, sun]}}}
  - {id: big, effect: review, when: {tool: pay.send, args: {amount: {gt: 50}}}}
  - {id: readme, effect: allow, when: {tool: fs.read_file, args: {path: {eq: /README.md}}}}
  - {id: team, effect: deny, code: wrong_team, when: {tool: pay.send}, unless: {agent: {attributes: {/team: {eq: pay}}}}}
  - {id: destructive, effect: review, when: {annotations: {destructive: {eq: true}}, tier: {in: [privileged, critical]}}}
"""

MONDAY_NOON = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def policy() -> PolicySet:
    return load_policy_texts([("doc.yaml", DOC)])


def ctx(policy: PolicySet, tool: str, role: str = "agent", now: float = MONDAY_NOON, **kw) -> RuleContext:
    return RuleContext(
        agent_id="a1", role=role, tool=tool, arguments=kw.pop("args", {}),
        tier=policy.tool_spec(tool).tier, now=now, **kw,
    )  # fmt: skip


def test_baseline_and_no_grant(policy: PolicySet) -> None:
    assert verdict(policy, ctx(policy, "fs.list_directory", args={"path": "/w/a"}), None)[:3] == (
        "allow", "allowed", ("baseline:agent",),
    )  # fmt: skip
    assert verdict(policy, ctx(policy, "fs.list_directory", args={"path": "/x"}), None)[:2] == ("deny", "no_grant")
    assert verdict(policy, ctx(policy, "fs.write_file", args={"path": "/w/a"}), None)[:2] == ("deny", "no_grant")
    assert verdict(policy, ctx(policy, "fs.list_directory", role="ghost", args={"path": "/w"}), None)[:2] == ("deny", "no_grant")


def test_grant_codes(policy: PolicySet) -> None:
    scope = compile_scope([{"tool": "fs.write_file", "args": {"path": {"path_under": "/w/src"}}}])
    ok = verdict(policy, ctx(policy, "fs.write_file", args={"path": "/w/src/a"}), scope)
    assert ok[:3] == ("allow", "allowed", ("grant",))
    assert verdict(policy, ctx(policy, "fs.write_file", args={"path": "/w/x"}), scope)[:2] == ("deny", "argument_out_of_scope")
    assert verdict(policy, ctx(policy, "fs.move", args={"path": "/w/src/a"}), scope)[:2] == ("deny", "tool_not_in_scope")
    # the baseline still applies while holding a grant
    assert verdict(policy, ctx(policy, "fs.list_directory", args={"path": "/w"}), scope)[2] == ("baseline:agent",)
    # unknown role with a grant: no_grant
    assert verdict(policy, ctx(policy, "fs.write_file", role="ghost", args={"path": "/w/src/a"}), scope)[:2] == ("deny", "no_grant")


def test_beyond_ceiling(policy: PolicySet) -> None:
    wide = compile_scope([{"tool": "fs.*"}])
    assert verdict(policy, ctx(policy, "fs.write_file", args={"path": "/etc/x"}), wide)[:2] == ("deny", "beyond_ceiling")
    # critical tool above the role's max tier, even inside the ceiling's patterns
    assert verdict(policy, ctx(policy, "fs.delete_file", args={"path": "/w/a"}), wide)[:2] == ("deny", "beyond_ceiling")
    assert verdict(policy, ctx(policy, "fs.write_file", args={"path": "/w/a"}), wide)[0] == "allow"


def test_deny_rule_overrides_every_permit(policy: PolicySet) -> None:
    scope = compile_scope([{"tool": "fs.read_file"}])
    effect, code, ids, reasons = verdict(policy, ctx(policy, "fs.read_file", args={"path": "/w/.env"}), scope)
    assert (effect, code, ids) == ("deny", "secret_file", ("no-env",)) and reasons == ("rule no-env: no env",)


def test_allow_rule_is_a_standing_permission_but_not_over_deny(policy: PolicySet) -> None:
    assert verdict(policy, ctx(policy, "fs.read_file", args={"path": "/README.md"}), None)[:3] == (
        "allow", "allowed", ("readme",),
    )  # fmt: skip
    assert verdict(policy, ctx(policy, "fs.read_file", role="ghost", args={"path": "/README.md"}), None)[0] == "allow"
    # an out-of-scope grant does not stop the standing permission either
    other = compile_scope([{"tool": "fs.write_file"}])
    assert verdict(policy, ctx(policy, "fs.read_file", args={"path": "/README.md"}), other)[2] == ("readme",)


def test_review_rules(policy: PolicySet) -> None:
    scope = compile_scope([{"tool": "pay.send", "args": {"amount": {le: 100} for le in ["le"]}}])
    attrs = {"team": "pay"}
    big = ctx(policy, "pay.send", args={"amount": 60}, attributes=attrs)
    assert verdict(policy, big, scope)[:3] == ("review", "review_required", ("grant", "big"))
    small = ctx(policy, "pay.send", args={"amount": 10}, attributes=attrs)
    assert verdict(policy, small, scope)[:2] == ("allow", "allowed")
    # review never turns a call that is not permitted into anything but deny
    assert verdict(policy, big, None)[:2] == ("deny", "no_grant")


def test_unless_fails_closed_on_missing_attributes(policy: PolicySet) -> None:
    scope = compile_scope([{"tool": "pay.send", "args": {"amount": {"le": 100}}}])
    for attrs in ({}, {"team": "ops"}, {"team": ["pay"]}):
        call = ctx(policy, "pay.send", args={"amount": 10}, attributes=attrs)
        assert verdict(policy, call, scope)[:2] == ("deny", "wrong_team")


def test_time_windows_wrap_midnight_and_use_the_zone(policy: PolicySet) -> None:
    scope = compile_scope([{"tool": "fs.write_file"}])

    def at(hour: int, minute: int = 0) -> str:
        t = datetime(2026, 1, 5, hour, minute, tzinfo=timezone.utc).timestamp()
        return verdict(policy, ctx(policy, "fs.write_file", now=t, args={"path": "/w/a"}), scope)[1]

    # Berlin is UTC+1 in January: 22:00-06:00 Berlin is 21:00-05:00 UTC
    assert at(20, 59) == "allowed"
    assert at(21, 0) == "after_hours"
    assert at(2) == "after_hours"
    assert at(4, 59) == "after_hours"
    assert at(5, 0) == "allowed"
    saturday = datetime(2026, 1, 10, 12, tzinfo=timezone.utc).timestamp()
    pay = ctx(policy, "pay.send", now=saturday, args={"amount": 1}, attributes={"team": "pay"})
    assert verdict(policy, pay, compile_scope([{"tool": "pay.send", "args": {"amount": {"le": 100}}}]))[1] == "weekend"


def test_annotations_and_tier_conditions(policy: PolicySet) -> None:
    scope = compile_scope([{"tool": "fs.write_file"}])
    call = ctx(policy, "fs.write_file", args={"path": "/w/a"}, annotations={"destructive": True})
    assert verdict(policy, call, scope)[:3] == ("review", "review_required", ("grant", "destructive"))
    low = ctx(policy, "fs.read_text", annotations={"destructive": True}, args={"path": "/w/a"})
    assert [h.rule_id for h in policy.evaluate(low)] == []
    assert [h.rule_id for h in policy.evaluate(dataclasses.replace(call, annotations={"destructive": 1}))] == []


def test_tool_spec_specificity_and_unmapped(policy: PolicySet) -> None:
    assert policy.tool_spec("fs.read_file").audience == "mcp:fs"
    assert policy.tool_spec("fs.read_text").tier == "low"
    assert policy.tool_spec("fs.read_text").audience == "fs.read_text"
    assert policy.tool_spec("fs.write_file").tier == "privileged"
    assert policy.tool_spec("fs.delete_all").tier == "critical"
    unmapped = policy.tool_spec("read_only_lookup")
    assert (unmapped.tier, unmapped.effect, unmapped.audience) == ("privileged", "write", "read_only_lookup")
    assert not policy.is_mapped("read_only_lookup") and policy.is_mapped("fs.x")


def test_tier_for_scope(policy: PolicySet) -> None:
    def tier(*tools: str) -> str:
        return policy.tier_for_scope(compile_scope([{"tool": t} for t in tools])).name

    assert tier("fs.read_file") == "low"
    assert tier("fs.read_*") == "low"
    assert tier("fs.read_file", "fs.write_file") == "privileged"
    assert tier("fs.*") == "critical"  # reaches fs.delete*
    assert tier("unknown.tool") == "privileged"
    assert tier("*") == "critical"
    assert tier("pay.*") == "privileged"  # reaches unmapped names
    assert tier() == "low"


def test_redact(policy: PolicySet) -> None:
    args = {"amount": 5, "memo": "secret", "card": {"number": "4111", "cvc": "1"}, "items": ["a", "b"]}
    out = policy.redact("pay.send", args)
    assert out == {"amount": 5, "memo": "[redacted]", "card": {"number": "[redacted]", "cvc": "1"}, "items": ["a", "[redacted]"]}
    assert args["memo"] == "secret" and args["card"]["number"] == "4111"  # input untouched
    assert policy.redact("fs.read_file", {"path": "/w"}) == {"path": "/w"}
    assert policy.redact("pay.send", {"amount": 1}) == {"amount": 1}


def test_policy_set_is_immutable_and_describes_itself(policy: PolicySet) -> None:
    with pytest.raises(AttributeError):
        policy.revision = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.tiers["low"] = None  # type: ignore[index]
    d = policy.describe()
    assert d["revision"] == policy.revision
    assert [r["id"] for r in d["rules"]] == ["no-env", "night", "weekend", "big", "readme", "team", "destructive"]
    assert d["roles"]["agent"]["max_tier"] == "privileged" and d["unmapped_tier"] == "privileged"


def test_evaluate_returns_every_match_in_file_order(policy: PolicySet) -> None:
    call = ctx(policy, "pay.send", args={"amount": 60, "path": "/x/.env"}, annotations={"destructive": True})
    assert [h.rule_id for h in policy.evaluate(call)] == ["no-env", "big", "team", "destructive"]
    assert policy.evaluate(call) == policy.evaluate(call)


def test_many_rules_stay_fast() -> None:
    import time

    rules = "\n".join(
        f"  - {{id: r{i}, effect: {'deny' if i % 2 else 'review'}, when: {{tool: 't{i % 10}.*', args: {{path: {{glob: '/x{i}/**'}}}}}}}}"
        for i in range(50)
    )
    p = load_policy_texts([("big", f"version: 1\nroles: {{agent: {{baseline: [{{tool: '*'}}]}}}}\nrules:\n{rules}\n")])
    call = RuleContext(agent_id="a", role="agent", tool="t1.read", arguments={"path": "/y/a"}, now=0)
    verdict(p, call, None)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        verdict(p, call, None)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 50 * 10e-6  # generous bound: well under 10 µs per rule on a slow CI box
