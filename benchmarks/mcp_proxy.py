"""tools/call latency through JITGate next to a direct call and a plain pass-through proxy.

    .venv/bin/python benchmarks/mcp_proxy.py [--calls 300] [--rounds 3] [--warmup 30] [--profile]

One run measures, over stdio and over streamable HTTP, `echo` on server-everything (the npm
peer from tests/peers, installed by scripts/install_peers.sh):

  direct   Python SDK client -> upstream
  plain    client -> a pass-through proxy on the same SDK (low-level Server, no authorization)
           -> upstream
  jitgate  client -> JITGate (`jitgate mcp` / `jitgate serve`, real Gateway, sqlite store in a
           temp dir, a grant covering the tool) -> upstream

Each proxy runs in its own process, as in production; calls are sequential after a warm-up.
All paths of a transport are connected at once and measured in turns (`--rounds`), so that the
machine's drifting speed falls on all of them alike. Prints p50/p99 latency, calls/s and the
CPU time the server process (the upstream for `direct`, else the proxy) spent per call (user +
system, all its threads, from /proc; Linux only) per row, and the ratio JITGate p50 / plain p50
(target <= 1.15): the median of the rounds' ratios. `--profile` runs the stdio JITGate under
cProfile and prints its top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
import mcp.types as t  # noqa: E402
import yaml  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

EVERYTHING = ROOT / "tests" / "peers" / "node_modules" / ".bin" / "mcp-server-everything"
JITGATE = Path(sys.executable).parent / "jitgate"
TARGET = 1.15
POLICY = {
    "version": 1, "name": "bench", "description": "the benchmark's tool and role",
    "tiers": {"low": {"max_ttl_s": 3600, "approval": "auto", "credential_ttl_s": 30},
              "privileged": {"max_ttl_s": 900, "approval": "one_human", "credential_ttl_s": 15},
              "critical": {"max_ttl_s": 300, "approval": "two_humans", "credential_ttl_s": 10}},
    "tools": [{"match": "every.*", "tier": "low", "effect": "read", "audience": "mcp:every"}],
    "roles": {"bench": {"description": "the benchmark agent", "max_tier": "low",
                        "baseline": [], "ceiling": [{"tool": "every.*"}]}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


# -- the plain pass-through proxy (run as a child: `mcp_proxy.py plain stdio|http URL PORT`) -----

def serve_plain(transport: str, upstream_url: str | None, port: int | None) -> None:
    import anyio
    import uvicorn
    from mcp.server import Server
    from mcp.server.stdio import stdio_server
    from starlette.applications import Starlette
    from starlette.routing import Mount

    async def main() -> None:
        if upstream_url:
            http = httpx2.AsyncClient(timeout=30)
            target: Any = streamable_http_client(upstream_url, http_client=http)
        else:
            target = stdio_client(StdioServerParameters(command=str(EVERYTHING), args=["stdio"]),
                                  errlog=open(os.devnull, "w"))
        async with Client(target, cache=None) as up:
            async def list_tools(ctx: Any, params: Any) -> t.ListToolsResult:
                page = await up.list_tools(cursor=params.cursor if params else None)
                return t.ListToolsResult(tools=page.tools, next_cursor=page.next_cursor)

            async def call_tool(ctx: Any, params: t.CallToolRequestParams) -> t.CallToolResult:
                r = await up.call_tool(params.name, params.arguments or {})
                return t.CallToolResult(content=r.content, structured_content=r.structured_content,
                                        is_error=r.is_error)

            server = Server("plain", on_list_tools=list_tools, on_call_tool=call_tool)
            if transport == "stdio":
                async with stdio_server() as (r, w):
                    await server.run(r, w, server.create_initialization_options())
                return
            app = server.streamable_http_app()

            @contextlib.asynccontextmanager
            async def lifespan(_a: Any) -> AsyncIterator[None]:
                async with server.session_manager.run():
                    yield

            host = Starlette(routes=[Mount("/", app=app)], lifespan=lifespan)
            cfg = uvicorn.Config(host, host="127.0.0.1", port=port or 0, log_level="error",
                                 access_log=False)
            await uvicorn.Server(cfg).serve()

    anyio.run(main)


# -- measuring ------------------------------------------------------------------------------------

def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (all its threads), or None where /proc has none."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def child_pids() -> set[int]:
    """This process's children (Linux /proc; empty elsewhere)."""
    out: set[int] = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    me = os.getpid()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                    out.add(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out


@dataclass
class Row:
    """One path measured: its client target, and the latencies of each round."""

    transport: str
    path: str
    target: Any  # a transport context manager (stdio) or a URL (streamable HTTP)
    tool: str
    headers: dict[str, str] | None = None
    pid: int | None = None  # the server process, when known (for its CPU time)
    rounds: list[list[float]] = field(default_factory=list)
    cpu_s: float = 0.0  # the server's CPU time over the measured calls

    @property
    def samples(self) -> list[float]:
        return [x for r in self.rounds for x in r]


async def _connect(stack: contextlib.AsyncExitStack, row: Row, warmup: int) -> Client:
    target = row.target
    if isinstance(target, str):
        http = await stack.enter_async_context(httpx2.AsyncClient(headers=row.headers or {},
                                                                  timeout=60))
        target = streamable_http_client(target, http_client=http)
    before = child_pids()
    client = await stack.enter_async_context(Client(target, cache=None, read_timeout_seconds=60))
    if row.pid is None:  # a stdio server is the child the client just started
        started = child_pids() - before
        row.pid = started.pop() if len(started) == 1 else None
    for i in range(warmup):
        res = await client.call_tool(row.tool, {"message": f"warm {i}"})
        if res.is_error:
            raise RuntimeError(f"{row.tool}: {res.content[0].text if res.content else res}")
    return client


async def measure(rows: list[Row], calls: int, warmup: int, rounds: int) -> None:
    """Connect every row, then take `calls` sequential calls per row per round, the rows taking
    turns, so that a drift in the machine's speed falls on all of them alike."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [await _connect(stack, row, warmup) for row in rows]
        for _ in range(rounds):
            for row, client in zip(rows, clients):
                lat = []
                cpu_before = cpu_seconds(row.pid)
                for i in range(calls):
                    start = time.perf_counter()
                    await client.call_tool(row.tool, {"message": f"call {i}"})
                    lat.append(time.perf_counter() - start)
                cpu_after = cpu_seconds(row.pid)
                if cpu_before is not None and cpu_after is not None:
                    row.cpu_s += cpu_after - cpu_before
                row.rounds.append(lat)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class JitgateSetup:
    """A data dir with a key for policy role `bench`, the policy, a config and an active grant."""

    def __init__(self, base: Path, upstream: dict[str, Any],
                 extra: dict[str, Any] | None = None) -> None:
        self.data = base / "data"
        policy = base / "bench-policy.yaml"
        policy.write_text(yaml.safe_dump(POLICY))
        self.config = base / "jitgate.yaml"
        self.config.write_text(yaml.safe_dump({"policy_files": [str(policy)],
                                               "upstreams": [upstream], **(extra or {})}))
        out = subprocess.run([str(JITGATE), "keys", "create", "--role", "agent", "--name",
                              "bench", "--policy-role", "bench", "--data-dir", str(self.data)],
                             check=True, capture_output=True, text=True)
        self.key = out.stdout.strip().splitlines()[-1]
        self.policy = policy
        self.extra = dict(extra or {})
        self.grant = ""

    @classmethod
    async def create(cls, base: Path, upstream: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> "JitgateSetup":
        setup = cls(base, upstream, extra)
        setup.grant = await setup._grant(setup.policy)
        return setup

    async def _grant(self, policy: Path) -> str:
        from adapters.compose import build_runtime
        from gateway.config import Settings
        from gateway.grants import GrantRequest

        runtime = await build_runtime(Settings(data_dir=self.data, policy_files=[str(policy)],
                                               **self.extra))
        try:
            principal = await runtime.gateway.authenticate(self.key)
            grant = await runtime.gateway.request_grant(principal, GrantRequest(
                objective="benchmark echo", scope=[{"tool": "every.echo"}], ttl_s=3600))
            return grant.grant_id
        finally:
            await runtime.close()


def stdio_jitgate(setup: JitgateSetup, profile_to: Path | None = None) -> StdioServerParameters:
    args = ["mcp", "--data-dir", str(setup.data), "--config", str(setup.config)]
    command = str(JITGATE)
    if profile_to is not None:
        command, args = sys.executable, ["-m", "cProfile", "-o", str(profile_to), str(JITGATE), *args]
    return StdioServerParameters(command=command, args=args,
                                 env={"JITGATE_AGENT_KEY": setup.key,
                                      "JITGATE_GRANT_ID": setup.grant})


async def run(calls: int, warmup: int, rounds: int, profile: bool) -> int:
    if not os.access(EVERYTHING, os.X_OK):
        print("benchmark needs tests/peers (run scripts/install_peers.sh)", file=sys.stderr)
        return 2
    devnull = open(os.devnull, "w")  # noqa: SIM115
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # stdio: every path its own process (tree), connected at once, measured in turns
        every = StdioServerParameters(command=str(EVERYTHING), args=["stdio"])
        plain = StdioServerParameters(command=sys.executable, args=[__file__, "plain", "stdio"])
        upstream = {"name": "every", "transport": "stdio", "command": str(EVERYTHING),
                    "args": ["stdio"]}
        (base / "s").mkdir()
        setup = await JitgateSetup.create(base / "s", upstream)
        (base / "n").mkdir()
        nsetup = await JitgateSetup.create(base / "n", upstream, {"audit_sync": "normal"})
        stdio_rows = [
            Row("stdio", "direct", stdio_client(every, errlog=devnull), "echo"),
            Row("stdio", "plain proxy", stdio_client(plain, errlog=devnull), "echo"),
            Row("stdio", "jitgate", stdio_client(stdio_jitgate(setup), errlog=devnull),
                "every.echo"),
            Row("stdio", "jitgate sync=normal",
                stdio_client(stdio_jitgate(nsetup), errlog=devnull), "every.echo"),
        ]
        await measure(stdio_rows, calls, warmup, rounds)

        # streamable HTTP: upstream, proxies and JITGate each in their own process
        up_port, plain_port, gw_port = free_port(), free_port(), free_port()
        procs = [subprocess.Popen([str(EVERYTHING), "streamableHttp"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL,
                                  env={**os.environ, "PORT": str(up_port)})]
        try:
            wait_port(up_port, procs[0])
            up_url = f"http://127.0.0.1:{up_port}/mcp"
            procs.append(subprocess.Popen([sys.executable, __file__, "plain", "http", up_url,
                                           str(plain_port)], stderr=subprocess.DEVNULL))
            (base / "h").mkdir()
            hsetup = await JitgateSetup.create(base / "h", {"name": "every", "transport": "http",
                                               "url": up_url})
            procs.append(subprocess.Popen(
                [str(JITGATE), "serve", "--data-dir", str(hsetup.data), "--config",
                 str(hsetup.config), "--port", str(gw_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(plain_port, procs[1])
            wait_port(gw_port, procs[2])
            http_rows = [
                Row("http", "direct", up_url, "echo", pid=procs[0].pid),
                Row("http", "plain proxy", f"http://127.0.0.1:{plain_port}/mcp", "echo",
                    pid=procs[1].pid),
                Row("http", "jitgate", f"http://127.0.0.1:{gw_port}/mcp", "every.echo",
                    headers={"Authorization": f"Bearer {hsetup.key}",
                             "X-JITGate-Grant": hsetup.grant}, pid=procs[2].pid),
            ]
            await measure(http_rows, calls, warmup, rounds)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)

        print(f"tools/call echo: {rounds} rounds of {calls} sequential calls per path, the paths "
              f"taking turns, after {warmup} warm-up calls")
        print(f"{'transport':<10}{'path':<21}{'p50 ms':>9}{'p99 ms':>9}{'calls/s':>10}"
              f"{'server CPU ms/call':>20}")
        for row in stdio_rows + http_rows:
            lat = row.samples
            cpu = f"{row.cpu_s / len(lat) * 1e3:.2f}" if row.pid is not None else "n/a"
            print(f"{row.transport:<10}{row.path:<21}{pct(lat, 50) * 1e3:>9.2f}"
                  f"{pct(lat, 99) * 1e3:>9.2f}{len(lat) / sum(lat):>10.0f}{cpu:>20}")
        worst = 0.0
        for rows in (stdio_rows, http_rows):
            plain_row = next(r for r in rows if r.path == "plain proxy")
            gate_row = next(r for r in rows if r.path == "jitgate")
            ratios = [pct(g, 50) / pct(p, 50) for g, p in zip(gate_row.rounds, plain_row.rounds)]
            ratio = statistics.median(ratios)
            worst = max(worst, ratio)
            print(f"{rows[0].transport}: JITGate p50 / plain proxy p50 = {ratio:.2f}, the median "
                  f"of rounds {', '.join(f'{r:.2f}' for r in ratios)} (target <= {TARGET})")

        if profile:
            prof = base / "jitgate.prof"
            await measure([Row("stdio", "jitgate (profiled)",
                               stdio_client(stdio_jitgate(setup, prof), errlog=devnull),
                               "every.echo")], calls, warmup, 1)
            import pstats

            for _ in range(100):  # the child writes its profile when it exits
                if prof.exists():
                    break
                await asyncio.sleep(0.05)
            stats = pstats.Stats(str(prof))
            stats.sort_stats("cumulative").print_stats(r"(gateway|adapters|policies)/", 25)
            stats.sort_stats("tottime").print_stats(15)
    return 0 if worst <= TARGET else 1


def main() -> None:
    if sys.argv[1:2] == ["plain"]:
        transport = sys.argv[2]
        serve_plain(transport, sys.argv[3] if transport == "http" else None,
                    int(sys.argv[4]) if transport == "http" else None)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300, help="calls per path per round")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    raise SystemExit(asyncio.run(run(a.calls, a.warmup, a.rounds, a.profile)))


if __name__ == "__main__":
    main()
