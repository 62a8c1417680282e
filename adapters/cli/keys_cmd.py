"""`jitgate keys create|list|disable|rotate`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from gateway.clock import SystemClock
from gateway.config import DEFAULT_DATA_DIR
from gateway.keys import KEY_PREFIX, create_key
from gateway.model import Role

from .terminal import safe

__all__ = ["app"]

app = typer.Typer(help="Agent keys and the call-token signing keys.", no_args_is_help=True)


def _stores(data_dir: Path):  # type: ignore[no-untyped-def]
    from adapters.storage.sqlite import open_sqlite

    return open_sqlite(data_dir)


@app.command("create")
def create(role: Role = typer.Option(..., "--role", help="agent | reviewer | admin"),
           name: str = typer.Option(..., "--name"),
           data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
           policy_role: str = typer.Option("", "--policy-role",
                                           help="Policy role if not the same as --role.")) -> None:
    """Create a key; it is shown once, alone on the last line, and stored only as a hash."""
    attrs = {"policy_role": policy_role} if policy_role else {}
    new = create_key(role, name, SystemClock(), attributes=attrs)

    async def save() -> None:
        stores = _stores(data_dir)
        try:
            if any(r.principal.id == new.record.principal.id for r in await stores.keys.list()):
                typer.echo(f"a key named {name!r} with role {role.value} exists; its principal "
                           "is shared by the new key")
            await stores.keys.add(new.record)
        finally:
            await stores.close()

    asyncio.run(save())
    typer.echo(f"created {role.value} key {new.record.key_id} for principal "
               f"{new.record.principal.id}; store it now, it is not shown again:")
    typer.echo(new.secret_key)


@app.command("list")
def list_keys(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir")) -> None:
    """Key ids, principals and roles (never the keys)."""

    async def read() -> None:
        stores = _stores(data_dir)
        try:
            for r in await stores.keys.list():
                state = "disabled" if r.disabled else "active"
                typer.echo(f"{safe(r.key_id)}  {r.principal.role.value:8}  "
                           f"{safe(r.principal.id)}  {state}")
        finally:
            await stores.close()

    asyncio.run(read())


@app.command("disable")
def disable(key_id: str, data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir")) -> None:
    """Disable a key at once; exit 1 if there is no such key."""

    async def run() -> bool:
        stores = _stores(data_dir)
        try:
            if await stores.keys.get(key_id) is None:
                return False
            await stores.keys.disable(key_id)
            return True
        finally:
            await stores.close()

    if key_id.startswith(KEY_PREFIX):  # a whole key: never echo its secret
        typer.echo("that is a whole key, not a key id: pass the id only "
                   "(see `jitgate keys list`)", err=True)
        raise typer.Exit(1)
    if not asyncio.run(run()):
        typer.echo(f"no key {safe(key_id)} in {safe(data_dir)}: nothing disabled "
                   "(see `jitgate keys list`)", err=True)
        raise typer.Exit(1)
    typer.echo(f"disabled {safe(key_id)}")


@app.command("rotate")
def rotate(data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir"),
           max_token_ttl_s: float = typer.Option(300, "--max-token-ttl",
                                                 help="Longest call-token TTL in force.")) -> None:
    """Add a new call-token signing key; the old one stays published until its tokens expire."""
    from adapters.credentials.keyring import Keyring

    ring = Keyring.open(Path(data_dir) / "keys", SystemClock())
    kid = ring.rotate(max_token_ttl_s)
    typer.echo(f"new signing key {kid}; published: {', '.join(ring.kids())}")
