"""Mint and verify throughput of call tokens on one core, next to the bare Ed25519 floor.

    .venv/bin/python benchmarks/credentials.py [--seconds 1.0]

Prints operations per second for: a bare Ed25519 sign and verify of the same bytes (the floor),
``CallTokenIssuer.mint`` (the gateway's per-call cost), pyjwt's EdDSA encode (for comparison) and
``CallTokenVerifier.verify`` (signature, claims, argument digest and single use, in-process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from adapters.credentials import CallTokenIssuer, CallTokenVerifier, Keyring  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.digest import args_digest  # noqa: E402
from gateway.model import Principal, Role, ToolCall  # noqa: E402
from gateway.ports import MintRequest  # noqa: E402

ARGS = {"order": "o-12345", "amount": 125, "currency": "EUR", "reason": "damaged item"}


def rate(fn: Callable[[int], None], seconds: float) -> float:
    n, total, start = 64, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn(n)
        total += n
    return total / elapsed


DIGEST = args_digest(ARGS)  # the pipeline computes it once per call for the decision anyway
AGENT = Principal("agent-1", Role.AGENT)


def request(i: int, now: float) -> MintRequest:
    call = ToolCall(agent=AGENT, tool="billing.refund", arguments=ARGS, grant_id="gr_1",
                    call_id=f"c_{i}")
    return MintRequest(call=call, decision_id=f"d_{i}", args_digest=DIGEST, ttl_s=30,
                       audience="billing", lease_id=f"ls_{i:012d}", now=now)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    seconds = parser.parse_args().seconds
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    clock = SystemClock()
    ring = Keyring.ephemeral(clock)
    issuer = CallTokenIssuer(ring, "https://gateway.example", clock)
    now = clock.now()
    sample = issuer.mint_now(request(0, now)).value or ""
    signing_input = sample.rsplit(".", 1)[0].encode()
    raw = Ed25519PrivateKey.generate()
    pub, sig = raw.public_key(), raw.sign(signing_input)
    pem_key = ring.active.private_key
    claims = {"iss": "https://gateway.example", "sub": "agent-1", "aud": "billing",
              "iat": int(now), "exp": int(now) + 30, "jti": "ls_x", "grant": "gr_1",
              "tool": "billing.refund", "args": args_digest(ARGS)}

    results: dict[str, float] = {}
    results["ed25519 sign (floor)"] = rate(
        lambda n: [raw.sign(signing_input) for _ in range(n)], seconds)
    results["ed25519 verify (floor)"] = rate(
        lambda n: [pub.verify(sig, signing_input) for _ in range(n)], seconds)

    loop = asyncio.new_event_loop()
    requests = [request(i, now) for i in range(64)]

    async def mint_batch(n: int) -> None:
        for r in requests[:n]:
            await issuer.mint(r)

    results["CallTokenIssuer.mint"] = rate(lambda n: loop.run_until_complete(mint_batch(n)),
                                           seconds)
    counter = iter(range(1, 10**9))
    results["  incl. building ToolCall+MintRequest"] = rate(
        lambda n: [issuer.mint_now(request(next(counter), now)) for _ in range(n)], seconds)
    results["pyjwt encode EdDSA (comparison)"] = rate(
        lambda n: [jwt.encode(claims, pem_key, algorithm="EdDSA", headers={"kid": "k"})
                   for _ in range(n)], seconds)

    tokens = [issuer.mint_now(request(10**8 + i, now)).value or "" for i in range(200_000)]
    verifier = CallTokenVerifier(ring.jwks(), audience="billing",
                                 issuer="https://gateway.example", clock=clock)
    it = iter(tokens)

    async def verify_batch(n: int) -> None:
        for _ in range(n):
            await verifier.verify(next(it), tool="billing.refund", arguments=ARGS)

    results["CallTokenVerifier.verify"] = rate(lambda n: loop.run_until_complete(
        verify_batch(n)), min(seconds, 1.5))
    loop.close()

    width = max(map(len, results))
    for name, ops in results.items():
        print(f"{name:<{width}}  {ops:>10,.0f} ops/s")
    mint = results["CallTokenIssuer.mint"]
    print(f"{'mint / sign floor':<{width}}  {mint / results['ed25519 sign (floor)']:>10.0%}")
    print(f"target: >= 10,000 mints/s on one core: {'met' if mint >= 10_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
