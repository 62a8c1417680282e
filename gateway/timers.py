"""`Later`: at most one pending deferred call on the running event loop."""

from __future__ import annotations

import asyncio
from typing import Callable

__all__ = ["Later"]


class Later:
    """At most one pending `fn()` at a time, on the running loop; armed again on a new loop if
    the one it was set on has gone away."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> bool:
        return self._handle is not None

    def arm(self, delay_s: float) -> None:
        """Call `fn` after `delay_s`, unless a call is already pending on this loop."""
        loop = asyncio.get_running_loop()
        if self._handle is not None and self._loop is loop:
            return
        self.cancel()
        self._loop, self._handle = loop, loop.call_later(delay_s, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop = None

    def _fire(self) -> None:
        self._handle = self._loop = None
        self._fn()
