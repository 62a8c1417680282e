"""Judge detector: an optional LLM alignment check for privileged calls.

The model is a port (`Judge`); `adapters.judge` implements it over any OpenAI-compatible
endpoint. Only calls whose tier is in `tiers` (privileged, critical) are judged. Each check has a
timeout. Failure modes, from `policy.drift.extra["judge_failure_mode"]` or the constructor:

- "deny": a failed or timed-out check yields a `detector_unavailable` signal (weight 0); the
  pipeline must deny the call with decision code `detector_unavailable` (fail closed) without
  counting it as drift;
- "allow_with_signal": the call goes on, with a `judge_unavailable` signal (default weight 0.2)
  in the score and the audit trail.

Only the exact string "allow_with_signal" fails open: any other policy value ("DENY", "deny ",
a typo) means "deny" (fail closed), and the signal's evidence names the value it did not know.
The constructor rejects an unknown mode, and so does the policy loader.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from policies.model import JUDGE_FAILURE_MODES

from ..model import DriftSignal, Grant, ToolCall
from .detector import DriftConfig, signal, spec_attr, tool_tier
from .semantic import call_text
from .state import GrantSession

__all__ = ["Judge", "JudgeVerdict", "JudgeDetector", "FAILURE_MODES"]

FAILURE_MODES = JUDGE_FAILURE_MODES  # ("deny", "allow_with_signal"), checked when a policy loads


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    aligned: bool
    reason: str = ""


class Judge(Protocol):
    async def judge(self, objective: str, call: str) -> JudgeVerdict: ...


class JudgeDetector:
    name = "judge"

    def __init__(self, judge: Judge, *, timeout_s: float = 5.0,
                 failure_mode: str = "allow_with_signal",
                 tiers: Sequence[str] = ("privileged", "critical")) -> None:
        if failure_mode not in FAILURE_MODES:
            raise ValueError(f"failure_mode must be one of {FAILURE_MODES}")
        self._judge = judge
        self.timeout_s = timeout_s
        self.failure_mode = failure_mode
        self.tiers = frozenset(tiers)

    def failure_mode_of(self, cfg: DriftConfig) -> tuple[str, str | None]:
        """(mode, the policy value when it is not a known mode). Fails closed: only the exact
        "allow_with_signal" lets a call go on without its check."""
        raw = cfg.extra.get("judge_failure_mode", self.failure_mode)
        if raw == "allow_with_signal":
            return "allow_with_signal", None
        return "deny", (None if raw == "deny" else str(raw))

    async def assess(self, state: GrantSession, call: ToolCall, grant: Grant | None,
                     tool_spec: Any, policy: Any) -> list[DriftSignal]:
        if grant is None or tool_tier(tool_spec) not in self.tiers:
            return []
        cfg = DriftConfig.of(policy)
        mode, unknown_mode = self.failure_mode_of(cfg)
        text = call_text(call, spec_attr(tool_spec, "description", "") or "")
        try:
            verdict = await asyncio.wait_for(self._judge.judge(grant.objective, text),
                                             self.timeout_s)
        except Exception as exc:  # timeout, transport, malformed answer: the configured mode
            why = "timeout" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else "error"
            code = "detector_unavailable" if mode == "deny" else "judge_unavailable"
            extra = {"unknown_mode": unknown_mode[:64]} if unknown_mode is not None else {}
            s = signal(cfg, self.name, code, tool=call.tool, failure=why, mode=mode, **extra)
            return [s] if s else []
        if verdict.aligned:
            return []
        s = signal(cfg, self.name, "judge_misaligned", tool=call.tool,
                   reason=verdict.reason[:300])
        return [s] if s else []
