"""The stage of a demo (and of the adapter tests): an in-memory gateway, an agent and a reviewer.

Also prints the story: `narrate()` for the lines, `print_decision_log()` for the grant's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from adapters.client import LocalGatewayClient
from gateway.clock import Clock, SystemClock
from gateway.keys import create_key
from gateway.model import Principal, Role
from policies.loader import load_policy_files

__all__ = ["Stage", "make_stage", "POLICY_DIR", "narrate", "print_decision_log"]

POLICY_DIR = Path(__file__).resolve().parent / "policies"


def _build_gateway(policy: Any, clock: Clock, drift: bool) -> Any:
    try:
        from adapters.compose import memory_gateway
    except ImportError:  # the composition root is not there: wire the memory stores by hand
        return _hand_built(policy, clock)
    if drift:
        return memory_gateway(policy=policy, clock=clock)
    return memory_gateway(policy=policy, clock=clock, drift=None)


def _hand_built(policy: Any, clock: Clock) -> Any:
    from adapters.credentials.call_token import CallTokenIssuer
    from adapters.credentials.keyring import Keyring
    from adapters.storage import memory
    from gateway.pipeline import Gateway

    issuer = CallTokenIssuer(Keyring.ephemeral(clock), "jitgate-demo", clock)
    return Gateway(policy=policy, grants=memory.MemoryGrantStore(),
                   approvals=memory.MemoryApprovalStore(), keys=memory.MemoryKeyStore(),
                   audit=memory.MemoryAuditLog(clock=clock), leases=memory.MemoryLeaseStore(),
                   pins=memory.MemoryToolPinStore(), issuers={"jwt": issuer}, clock=clock)


@dataclass
class Stage:
    gateway: Any
    clock: Clock
    agent: Principal
    reviewer: Principal
    agent_key: str
    reviewer_key: str

    def agent_client(self) -> LocalGatewayClient:
        return LocalGatewayClient(self.gateway, self.agent)

    def reviewer_client(self) -> LocalGatewayClient:
        return LocalGatewayClient(self.gateway, self.reviewer)


async def make_stage(policy_files: Sequence[str | Path], clock: Clock | None = None,
                     agent_name: str = "demo-agent", drift: bool = True) -> Stage:
    clock = clock or SystemClock()
    policy = load_policy_files([Path(p) for p in policy_files])
    gateway = _build_gateway(policy, clock, drift)
    agent_key = create_key(Role.AGENT, agent_name, clock)
    reviewer_key = create_key(Role.REVIEWER, "alice-reviewer", clock)
    await gateway.keys.add(agent_key.record)
    await gateway.keys.add(reviewer_key.record)
    return Stage(gateway=gateway, clock=clock, agent=agent_key.record.principal,
                 reviewer=reviewer_key.record.principal, agent_key=agent_key.secret_key,
                 reviewer_key=reviewer_key.secret_key)


def narrate(text: str, mark: str = "*") -> None:
    print(f"{mark} {text}", flush=True)


def _args_text(args: Mapping[str, Any] | None) -> str:
    if not args:
        return ""
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def print_decision_log(decisions: Sequence[Mapping[str, Any]], grant_id: str) -> None:
    print(f"\nDecision log for grant {grant_id}:", flush=True)
    print(f"  {'#':>3}  {'effect':<8} {'code':<22} tool(arguments)", flush=True)
    for i, d in enumerate(decisions, 1):
        print(f"  {i:>3}  {d.get('effect', ''):<8} {d.get('code', ''):<22} "
              f"{d.get('tool', '')}({_args_text(d.get('arguments'))})", flush=True)
