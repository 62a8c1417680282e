"""What came back from the tools: the open decisions, and their outcomes recorded.

An allowed decision stays open until its outcome is reported, once, by the agent that made the
call. With `complete`, the drift detectors see the output and the `call.completed` record and
the release of the one-shot lease are written before the caller is answered; with `report`
(a proxy that answers first), all of it is deferred to the start of the next decision, which
feeds the output to the detectors before it decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from policies.engine import PolicySet

from .clock import Clock
from .digest import canonical_json, sha256_hex
from .errors import GatewayError
from .model import CallOutcome, Decision, Effect, Lease, Principal, Role, ToolCall
from .ports import WRITE_BEHIND, AuditEvent, AuditLog
from .timers import Later

__all__ = ["Outcomes", "OPEN_DECISIONS"]

log = logging.getLogger("jitgate.outcomes")

OPEN_DECISIONS = 50_000  # the newest decisions whose outcome may still be reported
# A reported outcome waits at most this long for the next decision to take it in (`report`);
# that decision has its records written this long after it is concluded (`record_soon`).
SETTLE_AFTER_S = 0.002
RECORD_AFTER_S = 0.0003


@dataclass(slots=True)
class _Issued:
    call: ToolCall
    decision: Decision
    lease: Lease | None
    completed: bool = False


class Outcomes:
    def __init__(self, audit: AuditLog, clock: Clock, policy: Callable[[], PolicySet],
                 drift: Callable[[], Any],
                 end_leases: Callable[[Sequence[Lease], str], Awaitable[None]]) -> None:
        self._audit = audit
        self._clock = clock
        self._policy = policy
        self._drift = drift
        self._end_leases = end_leases
        self._issued: OrderedDict[str, _Issued] = OrderedDict()
        # records still being written after the answer went back, per grant (or agent)
        self._pending: dict[str, set[asyncio.Task[None]]] = {}
        # reported outcomes waiting for the next decision (or the timer): see `report`
        self._deferred: list[tuple[Principal, _Issued, CallOutcome]] = []
        self._settle_timer = Later(self._settle_later)
        self._settling: asyncio.Future[None] | None = None  # set while a settle runs
        self._unrecorded: list[tuple[Principal, _Issued, CallOutcome]] = []  # seen by drift
        self._record_timer = Later(self._start_records)

    def remember(self, call: ToolCall, decision: Decision, lease: Lease | None) -> None:
        self._issued[decision.decision_id] = _Issued(call, decision, lease)
        while len(self._issued) > OPEN_DECISIONS:
            self._issued.popitem(last=False)

    def _claim(self, principal: Principal, decision_id: str) -> _Issued:
        issued = self._issued.get(decision_id)
        if issued is None:
            raise GatewayError("decision_not_found", f"no open decision {decision_id}")
        if issued.call.agent.id != principal.id and principal.role is not Role.ADMIN:
            raise GatewayError("decision_not_found", f"no open decision {decision_id}")
        if issued.completed:
            raise GatewayError("conflict", "the result of this call was already reported")
        issued.completed = True
        return issued

    async def _observe(self, issued: _Issued, outcome: CallOutcome) -> None:
        """Feed the output to the drift detectors (in memory: before the next decision)."""
        drift = self._drift()
        if drift is None or issued.decision.effect is not Effect.ALLOW or outcome.output is None:
            return
        try:
            spec = self._policy().tool_spec(issued.call.tool)
            await drift.observe_output(issued.call, spec, outcome.output)
        except Exception:
            log.error("drift monitor failed to observe %s", issued.decision.decision_id)

    async def _record(self, principal: Principal, issued: _Issued, outcome: CallOutcome) -> None:
        size, out_digest = 0, None
        if outcome.output is not None:
            try:
                body = canonical_json(outcome.output)  # once: size and digest of the same text
                size, out_digest = len(body), sha256_hex(body)
            except Exception:
                size, out_digest = len(str(outcome.output)), None
        writes = [self._audit.append(AuditEvent(
            type="call.completed", actor=principal.id, grant_id=issued.call.grant_id,
            decision_id=issued.decision.decision_id, ts=self._clock.now(),
            data={"ok": outcome.ok, "error": (outcome.error or "")[:500] or None,
                  "output_digest": out_digest, "output_bytes": size,
                  "effect": issued.decision.effect.value,
                  "lease_id": issued.lease.lease_id if issued.lease else None}))]
        if issued.lease is not None:
            writes.append(self._end_leases([issued.lease], "used"))
        results = await asyncio.gather(*writes, return_exceptions=True)
        if isinstance(results[0], BaseException):
            raise results[0]

    async def complete(self, principal: Principal, decision_id: str, outcome: CallOutcome) -> None:
        """Record what the tool returned: drift detectors, audit, one-shot lease released."""
        issued = self._claim(principal, decision_id)
        await self._observe(issued, outcome)
        await self._record(principal, issued, outcome)

    async def report(self, principal: Principal, decision_id: str, outcome: CallOutcome) -> None:
        """Like `complete`, for a caller that answers first: claimed now, the rest deferred.

        The output reaches the drift detectors at the start of the next decision (`settle`),
        before that decision is made, or after SETTLE_AFTER_S if none comes first; the audit
        record and the lease release are then written behind (`drain()` waits for them). The
        work so stays off the path of the answer going back, and the records ride along with
        the next decision's round. The decision itself was audited before the call ran.
        """
        issued = self._claim(principal, decision_id)
        self._deferred.append((principal, issued, outcome))
        self._settle_timer.arm(SETTLE_AFTER_S)

    @property
    def unsettled(self) -> bool:
        """Reported outcomes not yet seen by the drift detectors."""
        return bool(self._deferred) or self._settling is not None

    def _settle_later(self) -> None:
        if self._deferred:
            self._spawn(None, self.settle())

    async def settle(self, *, record_now: bool = True) -> None:
        """Feed every reported output to the drift detectors, then have its records written:
        now, or with `record_now=False` (a decision is about to be made) once `record_soon`
        says so."""
        while self._settling is not None:  # another decision is feeding them: wait for it
            await self._settling
        self._settle_timer.cancel()
        if self._deferred:
            self._settling = gate = asyncio.get_running_loop().create_future()
            try:
                while self._deferred:
                    items, self._deferred = self._deferred, []
                    for principal, issued, outcome in items:
                        await self._observe(issued, outcome)
                        self._unrecorded.append((principal, issued, outcome))
            finally:
                self._settling = None
                gate.set_result(None)
        if record_now:
            self._start_records()

    def record_soon(self) -> None:
        """Have the settled outcomes' records written RECORD_AFTER_S from now: called once a
        decision is concluded, so that the work runs while its tool call is under way rather
        than on the decision's own path."""
        if self._unrecorded:
            self._record_timer.arm(RECORD_AFTER_S)

    def _start_records(self) -> None:
        self._record_timer.cancel()
        items, self._unrecorded = self._unrecorded, []
        for principal, issued, outcome in items:
            self._spawn(issued.call.grant_id or issued.call.agent.id,
                        self._record_quietly(principal, issued, outcome))

    def _spawn(self, key: str | None, work: Awaitable[None]) -> None:
        """Run `work` in the background, tracked (per grant or agent) for `drain()`."""
        task = asyncio.ensure_future(work)
        bucket = self._pending.setdefault(key or "", set())
        bucket.add(task)

        def done(t: asyncio.Task[None]) -> None:
            bucket.discard(t)
            if not bucket and self._pending.get(key or "") is bucket:
                del self._pending[key or ""]

        task.add_done_callback(done)

    async def _record_quietly(self, principal: Principal, issued: _Issued,
                              outcome: CallOutcome) -> None:
        WRITE_BEHIND.set(True)  # this task's own context: the answer has already gone back
        try:
            await self._record(principal, issued, outcome)
        except Exception:
            log.error("could not record the outcome of %s", issued.decision.decision_id)

    async def drain(self) -> None:
        """Wait for every outcome still being recorded (reads, shutdown, tests)."""
        await self.settle()
        while self._pending:
            tasks = [t for bucket in list(self._pending.values()) for t in bucket]
            await asyncio.gather(*tasks, return_exceptions=True)
