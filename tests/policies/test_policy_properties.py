"""Properties of verdict(): deny overrides, default deny, determinism, rule order."""

from __future__ import annotations

import random

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.engine import PolicySet, RuleContext, verdict
from policies.loader import load_policy_texts
from policies.scope import compile_scope

TOOLS = ["a.x", "a.y", "b.z", "c.q"]
PATTERNS = ["a.x", "a.y", "b.z", "a.*", "*", None]

when_st = st.fixed_dictionaries(
    {},
    optional={
        "tool": st.sampled_from(PATTERNS[:-1]),
        "args": st.one_of(
            st.builds(lambda n: {"n": {"le": n}}, st.integers(-3, 3)),
            st.builds(lambda p: {"p": {"path_under": p}}, st.sampled_from(["/w", "/v"])),
        ),
        "agent": st.just({"role": {"in": ["agent"]}}),
        "time": st.just({"between": ["09:00", "17:00"]}),
    },
)
rule_st = st.fixed_dictionaries(
    {"effect": st.sampled_from(["allow", "deny", "review"]), "when": when_st},
    optional={"code": st.sampled_from(["c_one", "c_two"])},
)
scope_st = st.lists(
    st.fixed_dictionaries(
        {"tool": st.sampled_from(PATTERNS[:-1])},
        optional={"args": st.builds(lambda n: {"n": {"ge": n}}, st.integers(-3, 3))},
    ),
    max_size=3,
)
call_st = st.fixed_dictionaries(
    {
        "tool": st.sampled_from(TOOLS),
        "args": st.fixed_dictionaries(
            {}, optional={"n": st.integers(-5, 5), "p": st.sampled_from(["/w/a", "/v", "/x"])}
        ),
        "role": st.sampled_from(["agent", "other"]),
        "hour": st.integers(0, 23),
    }
)


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:  # policies refuse YAML aliases
        return True


def dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_NoAliases)


def build(rules: list[dict], baseline: list[dict], ceiling: list[dict]) -> PolicySet:
    doc = {
        "version": 1,
        "tools": [{"match": "a.*", "tier": "low"}, {"match": "c.q", "tier": "critical"}],
        "roles": {"agent": {"max_tier": "privileged", "baseline": baseline, "ceiling": ceiling}},
        "rules": [{"id": f"r{i}", **r} for i, r in enumerate(rules)],
    }
    return load_policy_texts([("gen.yaml", dump(doc))])


def context(policy: PolicySet, call: dict) -> RuleContext:
    return RuleContext(
        agent_id="a1", role=call["role"], tool=call["tool"], arguments=call["args"],
        tier=policy.tool_spec(call["tool"]).tier, now=1_767_225_600 + call["hour"] * 3600,
    )  # fmt: skip


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.lists(rule_st, max_size=6), scope_st, scope_st, st.one_of(st.none(), scope_st), call_st,
    st.integers(0, 6),
)  # fmt: skip
def test_adding_a_matching_deny_rule_always_denies(rules, baseline, ceiling, grant, call, pos) -> None:
    scope = compile_scope(grant) if grant is not None else None
    deny = {"effect": "deny", "code": "added", "when": {"tool": call["tool"]}}
    with_deny = rules[:pos] + [deny] + rules[pos:]
    policy = build(with_deny, baseline, ceiling)
    effect, code, rule_ids, _ = verdict(policy, context(policy, call), scope)
    assert effect == "deny"
    assert f"r{min(pos, len(rules))}" in rule_ids


@settings(max_examples=80, deadline=None, database=None)
@given(st.lists(rule_st, max_size=6), scope_st, call_st)
def test_default_deny_without_any_permit(rules, ceiling, call) -> None:
    no_allow = [r for r in rules if r["effect"] != "allow"]
    policy = build(no_allow, [], ceiling)
    ctx = context(policy, call)
    assert verdict(policy, ctx, None)[0] == "deny"
    assert verdict(policy, ctx, ())[0] == "deny"


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.lists(rule_st, max_size=7), scope_st, scope_st, st.one_of(st.none(), scope_st), call_st,
    st.randoms(use_true_random=False),
)  # fmt: skip
def test_deterministic_and_order_independent_within_an_effect(
    rules, baseline, ceiling, grant, call, rnd: random.Random
) -> None:
    scope = compile_scope(grant) if grant is not None else None
    policy = build(rules, baseline, ceiling)
    ctx = context(policy, call)
    first = verdict(policy, ctx, scope)
    assert verdict(policy, ctx, scope) == first
    assert build(rules, baseline, ceiling).revision == policy.revision
    # shuffle rules inside each effect group, keeping the ids attached to the rules
    named = [{"id": f"r{i}", **r} for i, r in enumerate(rules)]
    groups = {e: [r for r in named if r["effect"] == e] for e in ("allow", "deny", "review")}
    for g in groups.values():
        rnd.shuffle(g)
    reordered = groups["review"] + groups["allow"] + groups["deny"]
    doc = {
        "version": 1,
        "tools": [{"match": "a.*", "tier": "low"}, {"match": "c.q", "tier": "critical"}],
        "roles": {"agent": {"max_tier": "privileged", "baseline": baseline, "ceiling": ceiling}},
        "rules": reordered,
    }
    shuffled = load_policy_texts([("gen.yaml", dump(doc))])
    second = verdict(shuffled, context(shuffled, call), scope)
    assert second[0] == first[0]
    if first[0] == "deny" and first[2]:
        assert set(second[2]) == set(first[2])


strings = st.text(alphabet="ab/.x", max_size=6)
pattern_st = st.one_of(
    st.builds(lambda s: {"prefix": s}, strings),
    st.builds(lambda s: {"glob": s}, st.text(alphabet="ab/*?x", max_size=5)),
    st.builds(lambda s: {"regex": s}, st.sampled_from(["a.*", "(?:b|x)+", "[ab]/x", "(a)\\1", "(?i)A", "x?"])),
    st.builds(lambda s: {"eq": s}, strings),
    st.builds(lambda s: {"in": s}, st.lists(strings, min_size=1, max_size=3)),
)  # fmt: skip
single_rule_st = st.fixed_dictionaries(
    {
        "effect": st.sampled_from(["deny", "review", "allow"]),
        "when": st.fixed_dictionaries(
            {"args": st.dictionaries(st.sampled_from(["p", "q"]), pattern_st, min_size=1, max_size=1)},
            optional={"tool": st.sampled_from(["a.x", "a.*"])},
        ),
    }
)


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.lists(st.one_of(single_rule_st, rule_st), min_size=1, max_size=10),
    st.fixed_dictionaries({}, optional={"p": st.one_of(strings, st.integers()), "q": strings}),
    st.sampled_from(["a.x", "a.y", "b.z"]),
)
def test_the_rule_index_finds_exactly_the_matching_rules(rules, args, tool) -> None:
    policy = build(rules, [], [])
    ctx = RuleContext(agent_id="a1", role="agent", tool=tool, arguments=args, tier="low",
                      now=1_767_225_600 + 10 * 3600)  # fmt: skip
    naive = [r.hit() for r in policy.rules if r.matches(ctx)]
    assert policy.evaluate(ctx) == naive
