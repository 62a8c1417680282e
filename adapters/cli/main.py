"""`jitgate`: the one command-line entry point."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Optional

import typer

from gateway.config import DEFAULT_DATA_DIR, load_settings
from gateway.model import Principal, Role

from . import audit_cmd, grants_cmd, keys_cmd, policy_cmd

__all__ = ["app"]

app = typer.Typer(help="JITGate: just-in-time authorization for AI-agent tool calls.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(grants_cmd.app, name="grants")

DataDir = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="Where the SQLite file and keys live.")


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (default 8750)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data directory."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML settings file."),
    policy: list[Path] = typer.Option([], "--policy", help="Policy file(s); replace the default pack."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Run the gateway: HTTP API, MCP endpoint at /mcp, metrics."""
    import uvicorn

    from adapters.compose import build_runtime, settle_heap

    settings = load_settings(config, host=host, port=port, data_dir=data_dir,
                             policy_files=[str(p) for p in policy] or None)

    async def main() -> None:
        runtime = await build_runtime(settings)
        try:
            app_ = runtime.app()
            settle_heap()
            server = uvicorn.Server(uvicorn.Config(app_, host=settings.host, port=settings.port,
                                                   log_level=log_level, access_log=False,
                                                   lifespan="on"))
            reload = runtime.services.reload_policy

            async def on_hup() -> None:
                try:
                    revision = await reload(Principal("admin:sighup", Role.ADMIN, "sighup"))
                    typer.echo(f"policy revision {revision[:12]} in force")
                except Exception as exc:  # keep serving with the policy in force
                    typer.echo(f"policy reload refused: {getattr(exc, 'message', type(exc).__name__)}",
                               err=True)

            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: asyncio.ensure_future(on_hup()))
            url = f"http://{settings.host}:{settings.port}"
            typer.echo(f"JITGate listening on {url}  (store: {settings.store}, data: "
                       f"{settings.data_dir}, policy revision {runtime.gateway.policy.revision[:12]})")
            typer.echo(f"  API {url}/v1  ·  MCP {url}/mcp  ·  OpenAPI {url}/openapi.json")
            typer.echo("  create an agent key:  jitgate keys create --role agent --name my-agent "
                       f"--data-dir {settings.data_dir}")
            await server.serve()
        finally:
            await runtime.close()

    asyncio.run(main())


@app.command()
def mcp(
    data_dir: Path = DataDir,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML settings file."),
    policy: list[Path] = typer.Option([], "--policy", help="Policy file(s)."),
) -> None:
    """Serve MCP over stdio, fronting the configured upstreams (key in JITGATE_AGENT_KEY)."""
    from adapters.mcp.runtime import run_stdio_cli

    settings = load_settings(config, data_dir=data_dir,
                             policy_files=[str(p) for p in policy] or None)
    code = asyncio.run(run_stdio_cli(settings))
    raise typer.Exit(code or 0)


@app.command()
def demo(data_dir: Path = typer.Option(Path(".jitgate-demo"), "--data-dir")) -> None:
    """An offline end-to-end run a newcomer can watch."""
    from .demo import run_demo

    raise typer.Exit(asyncio.run(run_demo(data_dir)))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
