"""`jitgate policy check|test|explain`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

__all__ = ["app"]

app = typer.Typer(help="Check, test and explain policies.", no_args_is_help=True)


@app.command("check")
def check(files: list[Path] = typer.Argument(..., help="Policy files or directories.")) -> None:
    """Report every problem with file, rule id and code; exit 1 if there is any."""
    from policies.loader import check_files

    problems = check_files(files)
    for p in problems:
        where = f" rule {p.rule_id}" if p.rule_id else ""
        typer.echo(f"{p.file}:{where} at {p.path or '-'}: {p.code}: {p.message}")
    if problems:
        typer.echo(f"{len(problems)} problem(s)")
        raise typer.Exit(1)
    from policies.loader import load_policy_files

    policy = load_policy_files(files)
    typer.echo(f"ok: {len(files)} file(s), revision {policy.revision}")


@app.command("test")
def test(case_dir: Path = typer.Argument(..., help="Directory of YAML test cases."),
         policy: list[Path] = typer.Option([], "--policy", help="Policy files (default pack)."),
         ) -> None:
    """Run YAML policy test cases: call + context → expected effect and code."""
    from policies.testing import run_policy_tests

    results = run_policy_tests(case_dir, [str(p) for p in policy] or None)
    failed = [r for r in results if not r.passed]
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        line = f"{mark} {r.name}"
        if not r.passed:
            line += f": expected {r.expected}, got {r.actual}"
        typer.echo(line)
    typer.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed or not results:
        raise typer.Exit(1)


@app.command("explain")
def explain_cmd(
    tool: str = typer.Option(..., "--tool"),
    args: str = typer.Option("{}", "--args", help="Arguments as a JSON object."),
    role: str = typer.Option("agent", "--role"),
    scope: Optional[str] = typer.Option(None, "--scope",
                                        help="Grant scope as JSON list; omit for baseline."),
    attributes: str = typer.Option("{}", "--attributes"),
    at: Optional[float] = typer.Option(None, "--at", help="Epoch seconds (default now)."),
    policy: list[Path] = typer.Option([], "--policy"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Why a call would get its decision."""
    from policies.engine import RuleContext
    from policies.loader import default_pack_paths, load_policy_files
    from policies.scope import compile_scope
    from policies.testing import explain

    try:
        arguments = json.loads(args)
        attrs = json.loads(attributes)
        scope_items = compile_scope(json.loads(scope)) if scope else None
    except (ValueError, Exception) as exc:  # bad JSON or a bad constraint
        typer.echo(f"invalid input: {getattr(exc, 'message', None) or exc.__class__.__name__}")
        raise typer.Exit(2)
    ps = load_policy_files([str(p) for p in policy] or default_pack_paths())
    ctx = RuleContext(agent_id="explain", role=role, attributes=attrs, tool=tool,
                      arguments=arguments, tier=ps.tier_of(tool).name, annotations={},
                      now=at if at is not None else time.time())
    out = explain(ps, ctx, scope_items)
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    for line in out.get("lines", []):
        typer.echo(line)
    typer.echo(f"=> {out.get('effect')} ({out.get('code')})")
