"""The enforcement point every framework adapter shares: authorize, run, report.

`ToolGate.run(tool, arguments, fn)` asks the gateway first; only an `allow` runs the local
function, whose output (or error) is reported back for the audit trail and the drift detectors.
Anything else comes back as text the model reads in place of the tool's output, so a refusal
never raises into the agent's run. A gateway that cannot be reached refuses too (fail closed),
and so do arguments that are not plain JSON (NaN, Infinity, objects): `invalid_arguments`,
decided here, before anything is sent. A failed report is logged; it never ends the run.

`SyncToolGate` is the same check and report, blocking, over a `SyncGatewayClient`, for agent
loops that run synchronously (LangGraph's `invoke`).
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol

from .result import AuthorizeResult, GatewayClientError

__all__ = ["GatewayAPI", "SyncGatewayAPI", "ToolGate", "SyncToolGate", "GateOutcome",
           "ReviewHandler", "SyncReviewHandler", "output_text", "arguments_error"]

log = logging.getLogger("jitgate.adapters")

# Called with a `review` result; returns True once a reviewer decided (the gate asks again).
ReviewHandler = Callable[[AuthorizeResult], Awaitable[bool]]
SyncReviewHandler = Callable[[AuthorizeResult], bool]
DecisionHook = Callable[[str, Mapping[str, Any], AuthorizeResult], None]


class GatewayAPI(Protocol):
    """What `GatewayClient` and `LocalGatewayClient` both offer to an adapter."""

    async def authorize(self, tool: str, arguments: Mapping[str, Any],
                        grant_id: str | None = None, call_id: str | None = None
                        ) -> AuthorizeResult: ...

    async def authorize_with_retry(self, tool: str, arguments: Mapping[str, Any],
                                   grant_id: str | None = None, call_id: str | None = None,
                                   max_wait_s: float = ...) -> AuthorizeResult: ...

    async def report_result(self, decision_id: str, ok: bool, output: Any,
                            error: str | None = None) -> None: ...

    async def decisions(self, grant_id: str) -> list[dict[str, Any]]: ...


class SyncGatewayAPI(Protocol):
    """What `SyncGatewayClient` offers to a synchronous adapter."""

    def authorize(self, tool: str, arguments: Mapping[str, Any], grant_id: str | None = None,
                  call_id: str | None = None) -> AuthorizeResult: ...

    def authorize_with_retry(self, tool: str, arguments: Mapping[str, Any],
                             grant_id: str | None = None, call_id: str | None = None,
                             max_wait_s: float = ...) -> AuthorizeResult: ...

    def report_result(self, decision_id: str, ok: bool, output: Any,
                      error: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class GateOutcome:
    text: str  # what the model reads
    ran: bool  # the local function ran
    result: AuthorizeResult | None  # the last decision (None: the gateway was unreachable)
    output: Any = None
    ok: bool = False
    error_code: str | None = None  # the client-side refusal's code, when `result` is None


def output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    try:
        return json.dumps(output)
    except (TypeError, ValueError):
        return str(output)


def arguments_error(arguments: Any) -> GatewayClientError | None:
    """`invalid_arguments` if the arguments are not a JSON object of plain JSON values."""
    if not isinstance(arguments, Mapping):
        return GatewayClientError("invalid_arguments", "the arguments are not a JSON object")
    try:
        json.dumps(dict(arguments), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return GatewayClientError(
            "invalid_arguments",
            "the arguments are not plain JSON (NaN, Infinity or an object JSON cannot hold)")
    return None


def _unreachable_text(error: GatewayClientError) -> str:
    head = f"JITGate refused this call; it did not run (code={error.code})."
    if error.code == "invalid_arguments":
        return f"{head} {error.message[:1].upper()}{error.message[1:]}."
    return f"{head} The gateway could not decide."


class _Gate:
    """What the async and the blocking gate share: settings, the local refusal of arguments
    that are no plain JSON, and how failures are turned into refusals and log lines."""

    def __init__(self, client: Any, grant_id: str | None = None, *,
                 max_wait_s: float = 10.0, on_review: Any = None,
                 on_decision: DecisionHook | None = None) -> None:
        self.client = client
        self.grant_id = grant_id
        self.max_wait_s = max_wait_s
        self.on_review = on_review
        self.on_decision = on_decision

    def _seen(self, tool: str, arguments: Mapping[str, Any], result: AuthorizeResult) -> None:
        if self.on_decision is not None:
            self.on_decision(tool, arguments, result)

    @staticmethod
    def _refused_locally(tool: str, arguments: Mapping[str, Any]) -> GatewayClientError | None:
        bad = arguments_error(arguments)
        if bad is not None:
            log.warning("jitgate refused %s locally: %s", tool, bad.code)
        return bad

    @staticmethod
    def _check_failed(tool: str, exc: Exception) -> GatewayClientError:
        """A failure while deciding is a refusal (fail closed), never an end of the run."""
        if isinstance(exc, GatewayClientError):
            log.warning("jitgate authorize failed for %s: %s", tool, exc.code)
            return exc
        log.exception("jitgate authorize failed for %s", tool)
        return GatewayClientError("internal_error")

    @staticmethod
    def _report_failed(result: AuthorizeResult, exc: Exception) -> None:
        """The call already ran: a failed report is logged and the run goes on."""
        if isinstance(exc, GatewayClientError):
            log.warning("jitgate result report failed for %s: %s", result.decision_id, exc.code)
        else:
            log.exception("jitgate result report failed for %s", result.decision_id)


class ToolGate(_Gate):
    """Authorize-then-run for one agent and (optionally) one grant."""

    client: GatewayAPI
    on_review: ReviewHandler | None

    async def check(self, tool: str, arguments: Mapping[str, Any],
                    call_id: str | None = None) -> AuthorizeResult | GatewayClientError:
        """The decision for one call, after throttle retries and an optional review wait.

        Never raises (but for cancellation): a failure is the `GatewayClientError` returned.
        """
        bad = self._refused_locally(tool, arguments)
        if bad is not None:
            return bad
        try:
            result = await self.client.authorize_with_retry(
                tool, arguments, grant_id=self.grant_id, call_id=call_id,
                max_wait_s=self.max_wait_s)
            self._seen(tool, arguments, result)
            if result.needs_review and self.on_review is not None:
                if await self.on_review(result):
                    result = await self.client.authorize(tool, arguments, grant_id=self.grant_id,
                                                         call_id=call_id)
                    self._seen(tool, arguments, result)
            return result
        except Exception as exc:  # a bug below us too: refuse, never end the agent's run
            return self._check_failed(tool, exc)

    async def report(self, result: AuthorizeResult, ok: bool, output: Any,
                     error: str | None = None) -> None:
        try:
            await self.client.report_result(result.decision_id, ok, output, error)
        except Exception as exc:
            self._report_failed(result, exc)

    async def run(self, tool: str, arguments: Mapping[str, Any],
                  fn: Callable[..., Any], call_id: str | None = None) -> GateOutcome:
        """Authorize `tool(arguments)`, run `fn(**arguments)` only if allowed, report the output."""
        verdict = await self.check(tool, arguments, call_id)
        if isinstance(verdict, GatewayClientError):
            return GateOutcome(text=_unreachable_text(verdict), ran=False, result=None,
                               error_code=verdict.code)
        if not verdict.allowed:
            return GateOutcome(text=verdict.refusal_text(), ran=False, result=verdict)
        try:
            output = fn(**dict(arguments))
            if inspect.isawaitable(output):
                output = await output
        except Exception as exc:  # the tool failed: the model reads it, the gateway records it
            error = f"{type(exc).__name__}: {exc}"
            await self.report(verdict, False, None, error)
            return GateOutcome(text=f"error: {error}", ran=True, result=verdict)
        await self.report(verdict, True, output)
        return GateOutcome(text=output_text(output), ran=True, result=verdict, output=output,
                           ok=True)


class SyncToolGate(_Gate):
    """`ToolGate.check` and `report`, blocking, over a `SyncGatewayClient`."""

    client: SyncGatewayAPI
    on_review: SyncReviewHandler | None

    def check(self, tool: str, arguments: Mapping[str, Any],
              call_id: str | None = None) -> AuthorizeResult | GatewayClientError:
        bad = self._refused_locally(tool, arguments)
        if bad is not None:
            return bad
        try:
            result = self.client.authorize_with_retry(tool, arguments, grant_id=self.grant_id,
                                                      call_id=call_id, max_wait_s=self.max_wait_s)
            self._seen(tool, arguments, result)
            if result.needs_review and self.on_review is not None and self.on_review(result):
                result = self.client.authorize(tool, arguments, grant_id=self.grant_id,
                                               call_id=call_id)
                self._seen(tool, arguments, result)
            return result
        except Exception as exc:
            return self._check_failed(tool, exc)

    def report(self, result: AuthorizeResult, ok: bool, output: Any,
               error: str | None = None) -> None:
        try:
            self.client.report_result(result.decision_id, ok, output, error)
        except Exception as exc:
            self._report_failed(result, exc)
