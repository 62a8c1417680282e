"""Loading policy documents: every problem reported, merging, revision hashes, library packs."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.loader import (
    PolicyLoadError,
    check_files,
    default_pack_paths,
    load_default,
    load_policy_files,
    load_policy_texts,
)

LIB = Path(__file__).resolve().parents[2] / "policies" / "library"

BAD = """\
version: 1
name: bad
colour: blue
tiers:
  low: {max_ttl_s: 60, approval: auto, credential_ttl_s: 5}
  urgent: {max_ttl_s: 60, approval: auto, credential_ttl_s: 5}
  critical: {max_ttl_s: 60, approval: three_humans, credential_ttl_s: 5}
tools:
  - {match: "a.*", tier: medium}
  - {match: b, tier: low, effct: read}
roles:
  agent:
    max_tier: high
    ceiling: [{tool: "a.*", args: {amount: {lte: 5}}}]
rules:
  - id: r1
    effect: deny
    code: Bad-Code
    when: {tool: x}
  - id: r2
    effect: forbid
  - id: r3
    effect: deny
    when:
      args:
        /amount: {le: "10"}
        path: {regex: "("}
      time: {between: ["25:00", "08:00"], tz: Mars/Olympus}
  - id: r3
    effect: allow
rate_limits:
  - {id: l1, per: agent, limit: "lots"}
"""


def codes(problems: list) -> set[tuple[str | None, str]]:
    return {(p.rule_id, p.code) for p in problems}


def test_a_bad_file_reports_every_problem_with_file_rule_and_code() -> None:
    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("bad.yaml", BAD)])
    problems = e.value.problems
    assert e.value.code == "invalid_policy"
    assert all(p.file == "bad.yaml" for p in problems)
    found = codes(problems)
    expected = {
        (None, "unknown_field"),  # colour, effct
        (None, "unknown_tier"),  # urgent, medium, high
        (None, "invalid_value"),  # three_humans
        (None, "unknown_operator"),  # lte
        ("r1", "bad_code"),
        ("r2", "invalid_value"),
        ("r3", "bad_operand"),
        ("r3", "bad_regex"),
        ("r3", "bad_time"),
        ("r3", "bad_timezone"),
        ("r3", "duplicate_rule_id"),
        (None, "bad_rate_limit"),
    }
    assert expected <= found, expected - found
    paths = {p.path for p in problems}
    assert "colour" in paths and "tools[1].effct" in paths and "tiers.urgent" in paths
    assert "rules[2].when.args./amount" in paths
    assert "roles.agent.ceiling[0].args.amount" in paths
    assert "roles.agent.max_tier" in paths
    assert "rules[1].effect" in paths and "rules[2].when.time.tz" in paths


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("a.yaml", "version: 1\nrules: [\n  - id: x\n")])
    (p,) = e.value.problems
    assert p.code == "yaml_syntax" and "line" in p.message and p.file == "a.yaml"


def test_yaml_aliases_are_refused() -> None:
    bomb = "version: 1\na: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"
    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("bomb.yaml", bomb)])
    (p,) = e.value.problems
    assert p.code == "yaml_syntax" and "alias" in p.message and "line 3" in p.message


def test_duplicate_keys_are_reported() -> None:
    doc = "version: 1\nroles:\n  agent: {max_tier: low}\n  agent: {max_tier: critical}\n"
    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("d.yaml", doc)])
    assert [p.code for p in e.value.problems] == ["duplicate_key"]
    assert "line 4" in e.value.problems[0].message


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("- a\n- b\n", "invalid_document"),
        ("", "invalid_document"),
        ("version: 2\n", "invalid_value"),
        ("name: x\n", "missing_field"),
        ("version: 1\ntiers: {critical: {max_ttl_s: 60, approval: two_humans, credential_ttl_s: 5, requires_justification: false}}\n", "invalid_tier"),
        ("version: 1\ntiers: {low: {max_ttl_s: 60, approval: auto, credential_ttl_s: 61}}\n", "invalid_tier"),
        ("version: 1\nrules: [{id: 'bad id', effect: deny}]\n", "bad_rule_id"),
        ("version: 1\ntools: [{match: x, tier: low, redact_args: ['/a~9']}]\n", "bad_pointer"),
        ("version: 1\nrules: [{id: r, effect: deny, when: {args: {a: {eq: 1, in: [1]}}}}]\n", "bad_constraint"),
        ("version: 1\nrules: [{id: r, effect: deny, when: {tool: {globb: x}}}]\n", "unknown_operator"),
    ],
)  # fmt: skip
def test_single_problem_codes(text: str, code: str) -> None:
    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("x.yaml", text)])
    assert code in {p.code for p in e.value.problems}


def test_merge_conflicts_across_files() -> None:
    a = "version: 1\ntiers: {low: {max_ttl_s: 60, approval: auto, credential_ttl_s: 5}}\nroles: {agent: {max_tier: low}}\ntools: [{match: t, tier: low}]\nrules: [{id: r, effect: deny}]\ndrift: {threshold: 1.0}\nrate_limits: [{id: l, limit: 1/second}]\n"
    b = "version: 1\ntiers: {low: {max_ttl_s: 61, approval: auto, credential_ttl_s: 5}}\nroles: {agent: {max_tier: critical}}\ntools: [{match: t, tier: critical}]\nrules: [{id: r, effect: allow}]\ndrift: {threshold: 2.0}\nrate_limits: [{id: l, limit: 2/second}]\n"
    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("a.yaml", a), ("b.yaml", b)])
    assert {p.code for p in e.value.problems} == {
        "conflicting_tier", "conflicting_role", "conflicting_tool", "duplicate_rule_id",
        "conflicting_drift", "duplicate_rate_limit_id",
    }  # fmt: skip
    assert all(p.file == "b.yaml" for p in e.value.problems)
    # identical definitions in two files are fine
    policy = load_policy_texts([("a.yaml", a), ("a2.yaml", a.replace("id: r,", "id: r2,").replace("id: l,", "id: l2,"))])
    assert [r.id for r in policy.rules] == ["r", "r2"]


def test_missing_tiers_take_the_defaults() -> None:
    policy = load_policy_texts([("x", "version: 1\n")])
    assert {n: t.approval for n, t in policy.tiers.items()} == {
        "low": "auto", "privileged": "one_human", "critical": "two_humans",
    }  # fmt: skip
    crit = policy.tiers["critical"]
    assert crit.approvals_required == 2 and crit.requires_justification and crit.review_after_use
    assert policy.tiers["privileged"].approvals_required == 1
    assert policy.tiers["low"].approvals_required == 0


def test_revision_is_stable_and_tracks_content() -> None:
    texts = [(str(p), p.read_text()) for p in default_pack_paths()]
    r1 = load_policy_texts(texts).revision
    assert r1 == load_policy_texts(texts).revision == load_default().revision
    assert len(r1) == 64 and int(r1, 16) >= 0
    # formatting and file names do not matter, content does
    renamed = [(f"other{i}", t + "\n# a comment\n") for i, (_, t) in enumerate(texts)]
    assert load_policy_texts(renamed).revision == r1
    changed = [(n, t.replace("max_len: 2000", "max_len: 2001")) for n, t in texts]
    assert load_policy_texts(changed).revision != r1


def test_check_files_and_missing_files(tmp_path: Path) -> None:
    assert check_files(default_pack_paths()) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    problems = check_files([bad, tmp_path / "nope.yaml"])
    assert {p.code for p in problems} >= {"file_not_found", "unknown_field", "bad_regex"}
    assert any(p.file == str(bad) for p in problems)
    assert check_files([LIB]) == []  # a directory stands for its YAML files
    with pytest.raises(PolicyLoadError):
        load_policy_files([])


def test_problem_messages_do_not_echo_values() -> None:
    doc = "version: 1\nrules: [{id: r, effect: deny, when: {args: {k: {in: 's3cr3t-value'}}}}]\n"
    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("x", doc)])
    assert all("s3cr3t" not in str(p) for p in e.value.problems)


def test_library_requirements() -> None:
    dev = load_policy_files([LIB / "devtools.yaml"])
    assert dev.tier_of("fs.read_file").name == "low"
    assert dev.tier_of("fs.list_directory").name == "low"
    assert dev.tier_of("fs.write_file").name == "privileged"
    assert dev.tiers["privileged"].approval == "one_human"
    agent = dev.role("agent")
    assert agent is not None
    for tool in ("fs.read_file", "fs.list_directory", "fs.write_file"):
        assert any(i.covers_tool(tool) for i in agent.ceiling), tool
    default = load_policy_files([LIB / "default.yaml"])
    assert {n: t.approval for n, t in default.tiers.items()} == {
        "low": "auto", "privileged": "one_human", "critical": "two_humans",
    }  # fmt: skip
    for policy in (dev, default, load_default()):
        assert policy.tier_of("totally.unknown_read_only_tool").name == "privileged"
        assert policy.tool_spec("get_weather_readonly").effect == "write"
    assert len(load_default().sources) == 3


@pytest.mark.parametrize("mode", ["DENY", "deny ", "fail_closed", True])
def test_an_unknown_judge_failure_mode_is_a_load_error(mode) -> None:
    doc = {"version": 1, "drift": {"extra": {"judge_failure_mode": mode}}}
    import yaml

    with pytest.raises(PolicyLoadError) as e:
        load_policy_texts([("j.yaml", yaml.safe_dump(doc))])
    assert any("judge_failure_mode" in p.message for p in e.value.problems)


def test_the_known_judge_failure_modes_load() -> None:
    for mode in ("deny", "allow_with_signal"):
        load_policy_texts([("j.yaml", f"version: 1\ndrift: {{extra: {{judge_failure_mode: {mode}}}}}\n")])
