"""Retry-pressure detector: re-trying denied calls, bursts of near-duplicates, renewals.

The throttle itself (`retry_backoff`) is the rate limiter's; these signals feed the drift
score so that an agent hammering at a refusal ends up revoked.
"""

from __future__ import annotations

from typing import Any

from ..model import DriftSignal, Grant, ToolCall
from ..ratelimit import near_args_digest
from .detector import DriftConfig, signal
from .state import GrantSession

__all__ = ["RetryDetector"]


class RetryDetector:
    """Signals: repeated_denial (this near-same call was denied before, within window_s),
    near_duplicate_burst (>= burst_n near-same write/egress calls within burst_s), repeated_renewal
    (the grant's lineage was renewed more than max_renewals times)."""

    name = "retry"

    def __init__(self, clock: Any, *, window_s: float = 600.0, burst_n: int = 5,
                 burst_s: float = 10.0, max_renewals: int = 2) -> None:
        self._clock = clock
        self.window_s = window_s
        self.burst_n = burst_n
        self.burst_s = burst_s
        self.max_renewals = max_renewals

    async def assess(self, state: GrantSession, call: ToolCall, grant: Grant | None,
                     tool_spec: Any, policy: Any) -> list[DriftSignal]:
        if grant is None:
            return []
        now = self._clock.now()
        cfg = DriftConfig.of(policy)
        digest = near_args_digest(call.arguments)
        state.cache["near_digest"] = (call, digest)  # reused by DriftMonitor.record
        denials = same = 0
        # most calls repeat nothing: the index says so without walking the history
        history = state.history if state.may_repeat(digest) else ()
        for rec in reversed(history):
            age = now - rec.t
            if age >= self.window_s:
                break
            if rec.tool == call.tool and rec.near_digest == digest:
                if rec.denied:
                    denials += 1
                if age < self.burst_s:
                    same += 1
        out: list[DriftSignal | None] = []
        if denials:
            out.append(signal(cfg, self.name, "repeated_denial", tool=call.tool,
                              prior_denials=denials))
        # Polling a read tool with the same arguments is normal; repeating an effect is not.
        effectful = getattr(tool_spec, "effect", "write") != "read"
        if effectful and same + 1 >= self.burst_n:
            out.append(signal(cfg, self.name, "near_duplicate_burst", tool=call.tool,
                              calls=same + 1, within_s=self.burst_s))
        if state.renewals > self.max_renewals and not state.cache.get("renewal_signalled"):
            state.cache["renewal_signalled"] = True
            out.append(signal(cfg, self.name, "repeated_renewal", renewals=state.renewals))
        return [s for s in out if s is not None]
