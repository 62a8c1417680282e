"""The drift monitor: runs the detectors per call, keeps the per-grant score and provenance.

Contract with the pipeline (per call):
    signals = await drift.assess(call, grant, tool_spec, policy)
    ... decide(... drift_score=drift.score(grant_id), new_signals=signals, ...)
    await drift.record(call, decision, signals)
    ... after the tool ran: await drift.observe_output(call, tool_spec, output)
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Sequence

from ..clock import Clock
from ..model import Decision, DriftSignal, Effect, Grant, ToolCall
from ..ratelimit import near_args_digest
from .detector import Detector, DriftConfig
from .provenance import ProvenanceDetector
from .retry import RetryDetector
from .scope import ScopeDetector
from .state import CallRecord, GrantSession

__all__ = ["DriftMonitor", "default_detectors", "build_monitor"]

log = logging.getLogger("jitgate.drift")


def default_detectors(clock: Clock) -> list[Detector]:
    """scope + retry + provenance: deterministic, no model, microseconds per call."""
    return [ScopeDetector(), RetryDetector(clock), ProvenanceDetector()]


_OUT_OF_SCOPE = frozenset({"tool_not_in_scope", "argument_out_of_scope"})

class DriftMonitor:
    def __init__(self, detectors: Sequence[Detector], clock: Clock, *,
                 max_grants: int = 100_000) -> None:
        self._detectors = list(detectors)
        self._clock = clock
        self._max = max_grants
        self._sessions: OrderedDict[str, GrantSession] = OrderedDict()
        self._window: dict[str, float | None] = {}
        self._revoked: set[str] = set()

    @property
    def detectors(self) -> list[Detector]:
        return list(self._detectors)

    # -- sessions ----------------------------------------------------------------------------
    def _session(self, grant: Grant) -> GrantSession:
        s = self._sessions.get(grant.grant_id)
        if s is None:
            s = GrantSession.for_grant(grant)
            parent = self._sessions.get(grant.parent_grant_id) if grant.parent_grant_id else None
            if parent is not None:  # a renewal keeps its lineage's score, history and data
                s.renewals = parent.renewals
                s.signals = list(parent.signals)
                s.history.extend(parent.history)
                s.trusted_exact |= parent.trusted_exact
                s.trusted_texts.extend(parent.trusted_texts)
                s.untrusted_exact.update(parent.untrusted_exact)
                s.untrusted_texts.extend(parent.untrusted_texts)
            self._sessions[grant.grant_id] = s
            while len(self._sessions) > self._max:
                old, _ = self._sessions.popitem(last=False)
                self._window.pop(old, None)
        else:
            self._sessions.move_to_end(grant.grant_id)
        return s

    def seed(self, grant: Grant) -> None:
        """Objective and scope literals become the grant's trusted provenance roots."""
        self._session(grant)

    def session(self, grant_id: str) -> GrantSession | None:
        return self._sessions.get(grant_id)

    def forget(self, grant_id: str) -> None:
        self._sessions.pop(grant_id, None)
        self._window.pop(grant_id, None)

    # -- per call ----------------------------------------------------------------------------
    async def assess(self, call: ToolCall, grant: Grant | None, tool_spec: Any,
                     policy: Any) -> list[DriftSignal]:
        if grant is None:
            return []
        state = self._session(grant)
        self._window[grant.grant_id] = DriftConfig.of(policy).window_s
        out: list[DriftSignal] = []
        state.cache["call_signals"] = out  # what earlier detectors found on this call
        for det in self._detectors:
            try:
                out.extend(await det.assess(state, call, grant, tool_spec, policy))
            except Exception as exc:  # fail closed: the pipeline denies detector_unavailable
                log.warning("drift detector %s failed: %s", det.name, type(exc).__name__)
                out.append(DriftSignal(det.name, 0.0, "detector_unavailable",
                                       {"error": type(exc).__name__}))
        if any(s.detector == "scope" and s.code in _OUT_OF_SCOPE for s in out):
            # The call is refused on scope already. A stray attempt is weighed by the scope and
            # retry detectors, so it never revokes a grant outright; but evidence that untrusted
            # data steered it (an injected recipient, URL, path) still counts in full.
            out[:] = [s for s in out if s.detector in ("scope", "retry")
                      or (s.detector == "provenance" and s.code == "untrusted_value")]
        return out

    async def record(self, call: ToolCall, decision: Decision,
                     signals: Sequence[DriftSignal] = ()) -> None:
        gid = call.grant_id or decision.grant_id
        state = self._sessions.get(gid) if gid else None
        if state is None:
            return
        now = self._clock.now()
        cached = state.cache.get("near_digest")
        digest = cached[1] if cached and cached[0] is call else near_args_digest(call.arguments)
        state.add_call(CallRecord(now, call.tool, digest,
                                  decision.effect is not Effect.ALLOW, decision.code))
        state.add_signals(now, [s for s in (signals or decision.signals) if s.weight > 0])
        if decision.code == "grant_revoked_drift" or decision.revoke_grant:
            state.revoked = True
            self._revoked.add(state.grant_id)

    async def observe_output(self, call: ToolCall, tool_spec: Any, output: Any, *,
                             trusted: bool | None = None) -> None:
        state = self._sessions.get(call.grant_id) if call.grant_id else None
        if state is None:
            return
        for det in self._detectors:
            observe = getattr(det, "observe", None)
            if observe is not None:
                try:
                    observe(state, call, tool_spec, output, trusted)
                except Exception as exc:  # ingest failure: values stay unknown (fail closed)
                    log.warning("drift ingest %s failed: %s", det.name, type(exc).__name__)

    async def note_renewal(self, grant_id: str) -> None:
        """The grant is being renewed: count it (repeated renewals are retry pressure)."""
        state = self._sessions.get(grant_id)
        if state is not None:
            state.renewals += 1

    # -- queries -----------------------------------------------------------------------------
    def score(self, grant_id: str | None) -> float:
        if not grant_id:
            return 0.0
        state = self._sessions.get(grant_id)
        if state is None:
            return 0.0
        return state.score(self._clock.now(), self._window.get(grant_id))

    def signals(self, grant_id: str) -> list[DriftSignal]:
        state = self._sessions.get(grant_id)
        return [s for _, s in state.signals] if state else []

    def revoked(self, grant_id: str) -> bool:
        """True once a decision revoked this grant for drift (it must not be renewed)."""
        return grant_id in self._revoked


def build_monitor(clock: Clock, *, semantic: Any = None, judge: Any = None,
                  descriptions: Any = None, semantic_threshold: float | None = None,
                  semantic_timeout_s: float | None = None,
                  judge_timeout_s: float = 5.0,
                  judge_failure_mode: str = "allow_with_signal",
                  max_grants: int = 100_000) -> DriftMonitor:
    """scope + retry + provenance, plus semantic when given an `Embedder`, plus judge when given
    a `Judge`. The adapters build those (`adapters.semantic.minilm_embedder()`,
    `adapters.judge.judge_from_settings(settings.judge)`); the core never imports them.
    A bare `True` / settings dict cannot be honoured here and fails loudly."""
    from .judge import JudgeDetector
    from .semantic import SemanticDetector

    detectors = default_detectors(clock)
    if semantic is not None and semantic is not False:
        if not hasattr(semantic, "embed"):
            raise ValueError("semantic needs an Embedder: adapters.semantic.minilm_embedder()")
        kw = {} if semantic_timeout_s is None else {"timeout_s": semantic_timeout_s}
        detectors.append(SemanticDetector(semantic, threshold=semantic_threshold,
                                          descriptions=descriptions, **kw))
    if judge is not None:
        if not hasattr(judge, "judge"):
            raise ValueError("judge needs a Judge: adapters.judge.judge_from_settings(...)")
        detectors.append(JudgeDetector(judge, timeout_s=judge_timeout_s,
                                       failure_mode=judge_failure_mode))
    return DriftMonitor(detectors, clock, max_grants=max_grants)
