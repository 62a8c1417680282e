"""`jitgate audit verify|tail|export` over the SQLite file, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from gateway.config import DEFAULT_DATA_DIR

__all__ = ["app"]

app = typer.Typer(help="Read and verify the audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the hash chain and signed checkpoints; exit 1 and name each bad record."""
    from adapters.storage.sqlite import verify_sqlite
    from gateway.ports import StoreUnavailable

    try:
        report = verify_sqlite(data_dir)
    except StoreUnavailable as exc:
        typer.echo(f"cannot verify: {exc}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for p in report.problems:
            typer.echo(f"record {p.seq}: {p.code}: {p.message}")
        state = "intact" if report.ok else "TAMPERED"
        typer.echo(f"{state}: {report.count} records, head seq {report.head_seq}, "
                   f"hash {report.head_hash[:16]}…, {len(report.problems)} problem(s)")
    raise typer.Exit(0 if report.ok else 1)


def _line(r) -> str:  # type: ignore[no-untyped-def]
    d = r.data
    what = d.get("effect", d.get("status", ""))
    code = d.get("code", "")
    tool = d.get("tool", "")
    return (f"{r.seq:>6} {r.type:<18} {r.actor:<24} {r.grant_id or '-':<20} "
            f"{tool} {what} {code}").rstrip()


@app.command("tail")
def tail(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
         n: int = typer.Option(20, "-n"),
         grant: Optional[str] = typer.Option(None, "--grant"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """The last records, one line each (or JSON Lines)."""
    from adapters.storage.sqlite import read_sqlite_audit

    records = read_sqlite_audit(data_dir, grant_id=grant)[-n:]
    for r in records:
        typer.echo(json.dumps(r.as_dict()) if as_json else _line(r))


@app.command("export")
def export(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
           out: Optional[Path] = typer.Option(None, "--out", help="File (default stdout)."),
           after_seq: int = typer.Option(0, "--after-seq")) -> None:
    """Every record as JSON Lines."""
    from adapters.storage.sqlite import iter_sqlite_audit

    fp = open(out, "w", encoding="utf-8") if out else sys.stdout
    count = 0
    try:
        for r in iter_sqlite_audit(data_dir, after_seq=after_seq):
            fp.write(json.dumps(r.as_dict(), separators=(",", ":")) + "\n")
            count += 1
    finally:
        if out:
            fp.close()
    if out:
        typer.echo(f"exported {count} records to {out}")
