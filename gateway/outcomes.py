"""What came back from the tools: the open decisions, and their outcomes recorded.

An allowed decision stays open until its outcome is reported, once, by the agent that made the
call. The drift detectors see the output at once; the `call.completed` record and the release of
the one-shot lease are written before the answer (`complete`) or right after it (`report`).
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

__all__ = ["Outcomes", "OPEN_DECISIONS"]

log = logging.getLogger("jitgate.outcomes")

OPEN_DECISIONS = 50_000  # the newest decisions whose outcome may still be reported


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
        """Like `complete`, but the durable part is written after the answer has gone back.

        The drift detectors see the output now, before any later decision; the audit record
        and the lease release follow in the background (`drain()` waits for them). The
        decision itself was audited before the call ran.
        """
        issued = self._claim(principal, decision_id)
        await self._observe(issued, outcome)
        key = issued.call.grant_id or issued.call.agent.id
        task = asyncio.ensure_future(self._record_quietly(principal, issued, outcome))
        bucket = self._pending.setdefault(key, set())
        bucket.add(task)

        def done(t: asyncio.Task[None]) -> None:
            bucket.discard(t)
            if not bucket and self._pending.get(key) is bucket:
                del self._pending[key]

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
        while self._pending:
            tasks = [t for bucket in list(self._pending.values()) for t in bucket]
            await asyncio.gather(*tasks, return_exceptions=True)
