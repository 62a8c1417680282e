"""The YAML policy corpus (tests/corpus/) through run_policy_tests, and explain()."""

from __future__ import annotations

from pathlib import Path

from policies.engine import RuleContext
from policies.loader import load_default
from policies.testing import explain, run_policy_tests

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def test_corpus_passes() -> None:
    results = run_policy_tests(CORPUS)
    failed = [f"{r.file} :: {r.name}: {r.message}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert len(results) >= 45
    effects = {(r.effect, r.code) for r in results}
    assert {("allow", "allowed"), ("review", "large_transfer"), ("deny", "beyond_ceiling")} <= effects
    for pack in ("default_cases.yaml", "devtools_cases.yaml", "payments_cases.yaml"):
        assert any(r.file.endswith(pack) for r in results)


def test_a_wrong_expectation_fails_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "cases:\n"
        "  - name: wrong\n"
        "    call: {tool: fs.read_file, arguments: {path: /workspace/a}}\n"
        "    expect: {effect: allow}\n"
        "  - name: bad case\n"
        "    call: {tool: x}\n"
        "    expect: {effect: maybe}\n"
    )
    wrong, bad = run_policy_tests(tmp_path)
    assert not wrong.passed and (wrong.effect, wrong.code) == ("deny", "no_grant")
    assert "expected allow" in wrong.message
    assert not bad.passed and bad.code == "invalid_case"


def test_policy_errors_and_empty_dirs(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("version: 1\nrules: [{id: r, effect: nope}]\n")
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "c.yaml").write_text(
        "cases: [{name: n, call: {tool: x}, expect: {effect: deny}}]\n"
    )
    (result,) = run_policy_tests(tmp_path / "cases", [tmp_path / "p.yaml"])
    assert not result.passed and result.code == "invalid_policy"
    (empty,) = run_policy_tests(tmp_path / "nothing")
    assert not empty.passed and empty.code == "no_cases"


def test_explain_walks_through_the_decision() -> None:
    policy = load_default()
    ctx = RuleContext(
        agent_id="a1", role="agent", tool="fs.read_file",
        arguments={"path": "/workspace/.env"}, now=1_767_614_400,
    )  # fmt: skip
    out = explain(policy, ctx, [{"tool": "fs.read_file"}])
    assert (out["effect"], out["code"], out["rule_ids"]) == ("deny", "secret_file", ["no-dotenv"])
    assert out["tier"] == "low" and out["scope"] == {"given": True, "covered": True, "code": "", "detail": ""}
    assert out["ceiling"]["within"] and out["revision"] == policy.revision
    assert out["lines"][-1].startswith("=> deny (secret_file)")
    assert any("no-dotenv" in line for line in out["lines"])

    unmapped = explain(policy, RuleContext(agent_id="a1", role="ghost", tool="x.y", now=0))
    assert (unmapped["effect"], unmapped["code"], unmapped["tier"]) == ("deny", "no_grant", "privileged")
    assert any("unmapped" in line for line in unmapped["lines"])
    assert any("ghost" in line for line in unmapped["lines"])
