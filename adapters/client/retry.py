"""Honouring `retry_after`: re-ask the gateway while it throttles, within a total wait budget.

Shared by every client flavour. The sleep is injectable so tests never wait for real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Mapping

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_result

from .result import AuthorizeResult

__all__ = ["retry_throttled", "retry_throttled_sync", "RetryingAuthorize", "DEFAULT_MAX_WAIT_S"]

DEFAULT_MAX_WAIT_S = 30.0
_MIN_WAIT_S = 0.05


def _next_wait(state: RetryCallState) -> float:
    result = state.outcome.result() if state.outcome is not None else None
    after = getattr(result, "retry_after", None)
    return max(float(after), _MIN_WAIT_S) if after is not None else 1.0


def _stop(max_wait_s: float) -> Callable[[RetryCallState], bool]:
    def stop(state: RetryCallState) -> bool:
        # Give up (and hand back the last throttle) when the next wait would pass the budget.
        return state.idle_for + _next_wait(state) > max_wait_s

    return stop


def _last_result(state: RetryCallState) -> AuthorizeResult:
    if state.outcome is None:  # pragma: no cover - tenacity always sets an outcome here
        raise RuntimeError("no attempt was made")
    return state.outcome.result()


def _is_throttle(result: AuthorizeResult) -> bool:
    return result.effect == "throttle"


def _retry_policy(max_wait_s: float, sleep: Callable[[float], Any]) -> dict[str, Any]:
    """One retry policy for the async and the sync client: retry while throttled, waiting what
    the gateway said, until `max_wait_s` is spent; then hand back the last answer."""
    return {"retry": retry_if_result(_is_throttle), "wait": _next_wait,
            "stop": _stop(max_wait_s), "sleep": sleep, "retry_error_callback": _last_result,
            "reraise": True}


async def retry_throttled(
    attempt: Callable[[], Awaitable[AuthorizeResult]],
    *,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AuthorizeResult:
    """Call `attempt` until it is not throttled, sleeping `retry_after` between tries."""
    retrying = AsyncRetrying(**_retry_policy(max_wait_s, sleep))

    async def once() -> AuthorizeResult:  # tenacity awaits only true coroutine functions
        return await attempt()

    return await retrying(once)


def retry_throttled_sync(
    attempt: Callable[[], AuthorizeResult],
    *,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> AuthorizeResult:
    retrying = Retrying(**_retry_policy(max_wait_s, sleep))
    return retrying(attempt)


class RetryingAuthorize:
    """`authorize_with_retry` for the async clients (HTTP and in process), one definition.

    The class using it provides `authorize(tool, arguments, grant_id, call_id)` and `_sleep`.
    """

    _sleep: Callable[[float], Awaitable[None]]

    async def authorize_with_retry(self, tool: str, arguments: Mapping[str, Any],
                                   grant_id: str | None = None, call_id: str | None = None,
                                   max_wait_s: float = DEFAULT_MAX_WAIT_S) -> AuthorizeResult:
        return await retry_throttled(
            lambda: self.authorize(tool, arguments, grant_id, call_id),  # type: ignore[attr-defined]
            max_wait_s=max_wait_s, sleep=self._sleep)
