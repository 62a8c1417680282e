"""Per-call cost of each drift detector (DriftMonitor.assess + record), p50/p95/p99 in µs.

The session is realistic: an objective, a scope of a few tools, and a few KB of trusted and
untrusted tool output ingested (transactions, a web page) before the measured calls, which
alternate between a read and a write with sensitive arguments.

    .venv/bin/python benchmarks/drift_cost.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.clock import FakeClock  # noqa: E402
from gateway.drift import (  # noqa: E402
    DriftMonitor,
    ProvenanceDetector,
    RetryDetector,
    ScopeDetector,
    SemanticDetector,
)
from gateway.model import (  # noqa: E402
    Decision,
    Effect,
    Grant,
    GrantStatus,
    Principal,
    Role,
    ScopeItem,
    ToolCall,
)
from policies.engine import DriftSettings, ToolSpec  # noqa: E402

AGENT = Principal("agent:bench", Role.AGENT)
OBJECTIVE = ("I just had dinner with a friend. They sent me their share from GB29NWBK60161331926819 "
             "but it is too much. We spent 12.00 in total. Send them back the difference.")
TRANSACTIONS = "\n".join(
    f"- amount: {i * 3.5}\n  id: {i}\n  recipient: me\n  sender: DE8937040044053201{i:04d}\n"
    f"  subject: 'Payment number {i} for services rendered, see www.shop{i}.example.com'"
    for i in range(40)
)
PAGE = "Welcome to the blog. " * 150 + " Contact: eve@example.org, www.eve.example.com/about"
READ = ToolSpec("get_most_recent_transactions", "low", "bank", effect="read", untrusted_output=True)
FETCH = ToolSpec("get_webpage", "low", "web", sensitive_args=("url",), effect="egress",
                 untrusted_output=True)
SEND = ToolSpec("send_money", "low", "bank", sensitive_args=("recipient",), effect="write")


class Policy:
    drift = DriftSettings(threshold=1.0, weights={}, window_s=3600)
    rate_limits = ()


class HashEmbedder:
    """Stand-in when the `semantic` extra is missing (measures the detector's own overhead)."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[float((hash(t) >> i) & 0xFF) for i in range(0, 384 * 8, 8)] for t in texts]


def grant() -> Grant:
    return Grant("grt_bench", AGENT.id, OBJECTIVE,
                 (ScopeItem("get_most_recent_transactions"), ScopeItem("send_money"),
                  ScopeItem("get_webpage")),
                 "low", "auto", GrantStatus.ACTIVE, 0.0, 3600, 1e12, AGENT.id)


async def measure(name: str, detectors: list[Any], clock: FakeClock, calls: int) -> dict[str, float]:
    mon = DriftMonitor(detectors, clock)
    g = grant()
    mon.seed(g)
    await mon.observe_output(ToolCall(AGENT, "get_most_recent_transactions", {"n": 100},
                                      grant_id=g.grant_id), READ, TRANSACTIONS)
    await mon.observe_output(ToolCall(AGENT, "get_webpage", {"url": "www.eve.example.com"},
                                      grant_id=g.grant_id), FETCH, PAGE)
    pol = Policy()
    samples: list[float] = []
    for i in range(calls):
        if i % 2:
            c = ToolCall(AGENT, "send_money", {"recipient": "GB29NWBK60161331926819",
                                               "amount": 4.0 + (i % 50), "subject": f"Refund {i}",
                                               "date": "2022-04-01"}, grant_id=g.grant_id)
            spec = SEND
        else:
            c = ToolCall(AGENT, "get_most_recent_transactions", {"n": 100}, grant_id=g.grant_id)
            spec = READ
        clock.advance(0.5)
        t0 = time.perf_counter_ns()
        sig = await mon.assess(c, g, spec, pol)
        await mon.record(c, Decision("d", Effect.ALLOW, "allowed", (), (), "r", c.tool,
                                     AGENT.id, "x", grant_id=g.grant_id), sig)
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]  # noqa: E731
    return {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "mean": statistics.fmean(samples)}


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args(argv)
    clock = FakeClock()
    try:
        from adapters.semantic import minilm_embedder, semantic_available

        embedder: Any = minilm_embedder() if semantic_available() else HashEmbedder()
    except ImportError:
        embedder = HashEmbedder()
    sem_name = "semantic (MiniLM, always)" if not isinstance(embedder, HashEmbedder) else "semantic (hash stand-in)"
    configs: list[tuple[str, list[Any], int]] = [
        ("none (monitor overhead)", [], args.calls),
        ("scope", [ScopeDetector()], args.calls),
        ("retry", [RetryDetector(clock)], args.calls),
        ("provenance", [ProvenanceDetector()], args.calls),
        ("scope+retry+provenance", [ScopeDetector(), RetryDetector(clock), ProvenanceDetector()],
         args.calls),
        (sem_name, [SemanticDetector(embedder, mode="always")], min(args.calls, 400)),
    ]
    print(f"{'detectors':32} {'calls':>6} {'p50 µs':>9} {'p95 µs':>9} {'p99 µs':>9} {'mean µs':>9}")
    results = {}
    for name, dets, n in configs:
        r = await measure(name, dets, clock, n)
        results[name] = r
        print(f"{name:32} {n:>6} {r['p50']:9.1f} {r['p95']:9.1f} {r['p99']:9.1f} {r['mean']:9.1f}")
    combined = results["scope+retry+provenance"]["p50"]
    verdict = "OK" if combined < 100 else "OVER BUDGET"
    print(f"\nscope+retry+provenance p50 = {combined:.1f} µs (budget 100 µs): {verdict}")
    print("semantic runs only on write/egress calls (half of the calls above), on a cache miss "
          "per distinct call text; in the default 'corroborate' mode only when another detector "
          "already found evidence on the call.")
    return 0 if combined < 100 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
