"""Core figures, measured in one run:

1. `decide()` decisions per second on a 50-rule policy (pure, one core);
2. the in-process pipeline (facts + decide + credential + durable SQLite audit append) per second,
   32 concurrent callers;
3. `POST /v1/authorize` over uvicorn on loopback next to a no-op route of the same app,
   32 connections (wrk), with requests/s, p50 and p99.

Run: .venv/bin/python benchmarks/core.py [--seconds 5] [--rounds 3] [--no-http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.clock import FakeClock  # noqa: E402
from gateway.decide import Facts, decide  # noqa: E402
from gateway.digest import args_digest  # noqa: E402
from gateway.model import Grant, GrantStatus, Principal, Role, ScopeItem, ToolCall  # noqa: E402
from policies.loader import load_policy_texts  # noqa: E402
from policies.scope import compile_scope  # noqa: E402


def fifty_rule_policy() -> str:
    tools = "\n".join(f"  - {{match: svc{i}.*, tier: {'low' if i % 2 else 'privileged'}, effect: write}}"
                      for i in range(10))
    rules = []
    for i in range(50):
        kind = i % 5
        if kind == 0:
            cond = f'tool: "svc{i % 10}.*"\n      args: {{path: {{glob: "**/secret{i}*"}}}}'
        elif kind == 1:
            cond = f'tool: fs.read_file\n      args: {{path: {{regex: "^/private/{i}/.*"}}}}'
        elif kind == 2:
            cond = f'tool: "svc{i % 10}.op{i}"\n      args: {{amount: {{gt: {1000 + i}}}}}'
        elif kind == 3:
            cond = f'tool: fs.read_file\n      args: {{path: {{prefix: "/workspace/blocked{i}"}}}}'
        else:
            cond = f'tool: "web.fetch"\n      args: {{url: {{not: {{host_in: [docs{i}.example.com]}}}}}}'
        effect = "review" if kind == 2 else "deny"
        rules.append(f"  - id: rule-{i}\n    effect: {effect}\n    when:\n      {cond}")
    return f"""version: 1
name: bench
tiers:
  low: {{max_ttl_s: 3600, approval: auto, credential_ttl_s: 30}}
  privileged: {{max_ttl_s: 900, approval: one_human, credential_ttl_s: 15}}
  critical: {{max_ttl_s: 300, approval: two_humans, credential_ttl_s: 10}}
tools:
  - {{match: fs.read_file, tier: low, effect: read}}
{tools}
roles:
  agent:
    max_tier: privileged
    baseline: []
    ceiling: [{{tool: "fs.*"}}, {{tool: "svc*"}}]
rules:
""" + "\n".join(rules) + "\n"


def bench_decide(seconds: float) -> float:
    policy = load_policy_texts([("bench.yaml", fifty_rule_policy())])
    agent = Principal("agent:bench", Role.AGENT)
    scope = (ScopeItem("fs.read_file", {"path": {"path_under": "/workspace/docs"}}),)
    grant = Grant(grant_id="grt_bench", agent_id=agent.id, objective="read docs", scope=scope,
                  tier="low", approval="auto", status=GrantStatus.ACTIVE, created_at=0.0,
                  ttl_s=3600, expires_at=1e12, requested_by=agent.id)
    compiled = compile_scope([s.as_dict() for s in scope])
    call = ToolCall(agent, "fs.read_file", {"path": "/workspace/docs/a.md"}, grant_id="grt_bench")
    facts = Facts(now=1_800_000_000.0, decision_id="dec_x", args_digest=args_digest(call.arguments),
                  grant=grant, grant_scope=compiled)
    assert decide(call, facts, policy).code == "allowed"
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            decide(call, facts, policy)
        n += 1000
    return n / (time.perf_counter() - start)


async def bench_pipeline(seconds: float, concurrency: int = 32) -> tuple[float, float]:
    from adapters.compose import build_runtime
    from gateway.config import Settings
    from gateway.grants import GrantRequest

    data = Path(tempfile.mkdtemp(prefix="jitgate-bench-"))
    try:
        from benchmarks.bench_policy import bench_policy

        runtime = await build_runtime(Settings(data_dir=data, drift_enabled=False), policy=bench_policy())
        gw = runtime.gateway
        agent = Principal("agent:bench", Role.AGENT)
        g = await gw.request_grant(agent, GrantRequest(
            "read docs", [{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}], 3600))
        done = 0
        stop = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            nonlocal done
            k = 0
            while time.perf_counter() < stop:
                a = await gw.authorize(ToolCall(agent, "fs.read_file",
                                                {"path": f"/workspace/docs/{i}-{k}.md"}, grant_id=g.grant_id))
                assert a.decision.allowed, a.decision
                k += 1
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        rate = done / (time.perf_counter() - start)
        t0 = time.perf_counter()
        for k in range(300):
            await gw.authorize(ToolCall(agent, "fs.read_file", {"path": f"/workspace/docs/s{k}"},
                                        grant_id=g.grant_id))
        single_ms = (time.perf_counter() - t0) / 300 * 1000
        await runtime.close()
        return rate, single_ms
    finally:
        shutil.rmtree(data, ignore_errors=True)


LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"grant_id": "%s", "tool": "fs.read_file", "arguments": {"path": "/workspace/docs/' .. counter .. '.md"}}'
  return wrk.format(nil, nil, nil, body)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrk(url: str, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"),
            "non2xx": int(errors.group(1)) if errors else 0}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (its p50/p99 go with it)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def bench_http(seconds: int, connections: int, drift: bool, rounds: int = 3
               ) -> tuple[dict, dict]:
    """No-op and authorize runs alternate `rounds` times (this machine's speed drifts by tens of
    percent within a minute); each route's median run is reported."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the HTTP figures: apt-get install -y wrk")
    tmp = Path(tempfile.mkdtemp(prefix="jitgate-bench-http-"))
    info_file = tmp / "info.json"
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bench_server.py"),
                             str(info_file), str(port), "drift" if drift else "nodrift"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(300):
            if info_file.exists():
                break
            time.sleep(0.1)
        time.sleep(1.0)
        info = json.loads(info_file.read_text())
        auth_lua = tmp / "auth.lua"
        auth_lua.write_text(LUA % (info["key"], info["grant_id"]))
        noop_lua = tmp / "noop.lua"
        noop_lua.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                            'wrk.body = \'{"tool": "fs.read_file", "arguments": {"path": "/x"}}\'\n')
        base = f"http://127.0.0.1:{port}"
        _wrk(base + "/bench/noop", noop_lua, 2, connections)  # warm-up
        _wrk(base + "/v1/authorize", auth_lua, 2, connections)
        noops, auths = [], []
        for _ in range(rounds):
            noops.append(_wrk(base + "/bench/noop", noop_lua, seconds, connections))
            auths.append(_wrk(base + "/v1/authorize", auth_lua, seconds, connections))
        noop, auth = _median_run(noops), _median_run(auths)
        noop["all"] = [round(r["rps"]) for r in noops]
        auth["all"] = [round(r["rps"]) for r in auths]
        return noop, auth
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5, help="per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating no-op/authorize runs")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--drift", action="store_true", help="HTTP run with drift detectors on")
    a = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    d = bench_decide(min(a.seconds, 5))
    print(f"decide() on a 50-rule policy:           {d:>12,.0f} decisions/s  (target >= 100,000)")
    rate, single = asyncio.run(bench_pipeline(min(a.seconds, 5)))
    print(f"pipeline, SQLite audit durable, 32 tasks:{rate:>11,.0f} calls/s; one caller alone "
          f"{single:.2f} ms/call")
    if a.no_http:
        return
    noop, auth = bench_http(a.seconds, a.connections, a.drift, a.rounds)
    print(f"HTTP, {a.connections} connections, {a.rounds} alternating rounds of {a.seconds}s "
          "(wrk), median run:")
    for name, r in (("no-op route", noop), ("POST /v1/authorize", auth)):
        print(f"  {name:<20} {r['rps']:>9,.0f} req/s   p50 {r['p50_ms']:7.2f} ms   p99 "
              f"{r['p99_ms']:7.2f} ms   non-2xx {r['non2xx']}   (runs: {r['all']})")
    print(f"  authorize / no-op throughput: {auth['rps'] / noop['rps']:.1%}  (target >= 35%)")


if __name__ == "__main__":
    main()
