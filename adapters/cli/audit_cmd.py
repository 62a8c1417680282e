"""`jitgate audit verify|tail|export` over the SQLite file, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from gateway.config import DEFAULT_DATA_DIR

from .terminal import safe

__all__ = ["app"]

app = typer.Typer(help="Read and verify the audit trail.", no_args_is_help=True)


_CHECKPOINT_CODES = ("bad_checkpoint", "missing_checkpoint")


@app.command("verify")
def verify(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
           as_json: bool = typer.Option(False, "--json"),
           checkpoint_every: Optional[int] = typer.Option(
               None, "--checkpoint-every",
               help="The interval the gateway signs checkpoints at (default: "
                    "audit_checkpoint_every from the settings, 100); 0 skips the check."),
           config: Optional[Path] = typer.Option(None, "--config",
                                                 help="YAML settings file.")) -> None:
    """Check the hash chain and signed checkpoints; exit 1 and name each bad record.

    A checkpoint must exist at every multiple of the checkpoint interval up to the head (one
    that was deleted is `missing_checkpoint`); records after the last checkpoint are not covered
    by a signature yet, which is reported as a warning.
    """
    from adapters.storage.sqlite import verify_sqlite
    from gateway.ports import StoreUnavailable

    every = checkpoint_every if checkpoint_every is not None else _settings_interval(config)
    try:
        report = verify_sqlite(data_dir, checkpoint_every=every)
    except StoreUnavailable as exc:
        typer.echo(f"cannot verify: {safe(exc)}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for p in report.problems:
            what = "checkpoint" if p.code in _CHECKPOINT_CODES else "record"
            typer.echo(f"{what} {p.seq}: {p.code}: {safe(p.message)}")
        if report.uncovered:
            first = report.head_seq - report.uncovered + 1
            span = str(first) if report.uncovered == 1 else f"{first}..{report.head_seq}"
            typer.echo(f"warning: {report.uncovered} record(s) (seq {span}) are not covered by "
                       "a signed checkpoint, only by the hash chain (a running gateway signs "
                       "at each interval, and the head when it stops)")
        state = "intact" if report.ok else "TAMPERED"
        typer.echo(f"{state}: {report.count} records, head seq {report.head_seq}, "
                   f"hash {safe(report.head_hash[:16])}…, {report.checkpoints} checkpoint(s), "
                   f"{len(report.problems)} problem(s)")
    raise typer.Exit(0 if report.ok else 1)


def _settings_interval(config: Optional[Path]) -> int:
    """`audit_checkpoint_every` as the gateway is configured (settings file, environment)."""
    from gateway.config import load_settings

    try:
        return load_settings(config).audit_checkpoint_every
    except Exception as exc:  # the message may quote configured values: name the kind only
        typer.echo(f"cannot read the settings ({type(exc).__name__}); pass --checkpoint-every",
                   err=True)
        raise typer.Exit(2)


def _line(r) -> str:  # type: ignore[no-untyped-def]
    d = r.data
    what = d.get("effect", d.get("status", ""))
    code = d.get("code", "")
    tool = d.get("tool", "")
    grant = safe(r.grant_id or "-")
    return (f"{r.seq:>6} {safe(r.type):<18} {safe(r.actor):<24} {grant:<20} "
            f"{safe(tool)} {safe(what)} {safe(code)}").rstrip()


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
