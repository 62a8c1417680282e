"""`jitgate grants list|show|approve|deny|revoke` against a running gateway."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import typer

from .terminal import safe

__all__ = ["app"]

app = typer.Typer(help="Grants, through a running gateway's API.", no_args_is_help=True)

Url = typer.Option(os.environ.get("JITGATE_URL", "http://127.0.0.1:8750"), "--url")
Key = typer.Option(None, "--key", help="Bearer key (default $JITGATE_KEY).")


def _call(method: str, url: str, path: str, key: Optional[str], body: Any = None) -> Any:
    import httpx2

    key = key or os.environ.get("JITGATE_KEY")
    if not key:
        typer.echo("a key is needed: --key or JITGATE_KEY", err=True)
        raise typer.Exit(2)
    try:
        resp = httpx2.request(method, url.rstrip("/") + path, json=body,
                              headers={"Authorization": f"Bearer {key}"}, timeout=30)
    except Exception:
        typer.echo(f"cannot reach the gateway at {url}", err=True)
        raise typer.Exit(2)
    try:
        data = resp.json() if resp.content else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        excerpt = safe(resp.content[:80].decode("utf-8", "replace"))
        typer.echo(f"error {resp.status_code}: the gateway's answer is not a JSON object "
                   f"(it starts with: {excerpt})", err=True)
        raise typer.Exit(2)
    if resp.status_code >= 400:
        err = data.get("error")
        err = err if isinstance(err, dict) else {}
        typer.echo(f"error {resp.status_code}: {safe(err.get('code'))}: "
                   f"{safe(err.get('message'))}", err=True)
        raise typer.Exit(1)
    return data


def _row(g: Any) -> str:
    """One grant, every field escaped (the objective and the tool names come from the agent)."""
    g = g if isinstance(g, dict) else {}
    scope = g.get("scope")
    tools = ",".join(str(s.get("tool", "?")) if isinstance(s, dict) else "?"
                     for s in (scope if isinstance(scope, list) else []))
    objective = str(g.get("objective", ""))[:60]
    return (f"{safe(g.get('grant_id', '?'))}  {safe(g.get('status', '?')):9} "
            f"{safe(g.get('tier', '?')):10} {safe(g.get('agent_id', '?')):<22} {safe(tools)}  "
            f"{safe(objective)}")


@app.command("list")
def list_(status: Optional[str] = typer.Option(None), url: str = Url, key: Optional[str] = Key) -> None:
    data = _call("GET", url, "/v1/grants" + (f"?status={status}" if status else ""), key)
    grants = data.get("grants")
    for g in grants if isinstance(grants, list) else []:
        typer.echo(_row(g))


@app.command("show")
def show(grant_id: str, url: str = Url, key: Optional[str] = Key) -> None:
    typer.echo(json.dumps(_call("GET", url, f"/v1/grants/{grant_id}", key), indent=2))


def _action(action: str, grant_id: str, url: str, key: Optional[str], note: str) -> None:
    g = _call("POST", url, f"/v1/grants/{grant_id}/{action}", key, {"note": note})
    typer.echo(_row(g))


@app.command("approve")
def approve(grant_id: str, note: str = typer.Option(""), url: str = Url, key: Optional[str] = Key) -> None:
    _action("approve", grant_id, url, key, note)


@app.command("deny")
def deny(grant_id: str, note: str = typer.Option(""), url: str = Url, key: Optional[str] = Key) -> None:
    _action("deny", grant_id, url, key, note)


@app.command("revoke")
def revoke(grant_id: str, note: str = typer.Option(""), url: str = Url, key: Optional[str] = Key) -> None:
    _action("revoke", grant_id, url, key, note)
