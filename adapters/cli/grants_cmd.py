"""`jitgate grants list|show|approve|deny|revoke` against a running gateway."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import typer

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
    data = resp.json() if resp.content else {}
    if resp.status_code >= 400:
        err = data.get("error", {})
        typer.echo(f"error {resp.status_code}: {err.get('code')}: {err.get('message')}", err=True)
        raise typer.Exit(1)
    return data


def _row(g: dict) -> str:
    tools = ",".join(s["tool"] for s in g.get("scope", []))
    return (f"{g['grant_id']}  {g['status']:9} {g['tier']:10} {g['agent_id']:<22} {tools}  "
            f"{g['objective'][:60]}")


@app.command("list")
def list_(status: Optional[str] = typer.Option(None), url: str = Url, key: Optional[str] = Key) -> None:
    data = _call("GET", url, "/v1/grants" + (f"?status={status}" if status else ""), key)
    for g in data.get("grants", []):
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
