"""fdatasync of the SQLite WAL in a helper process, answered through the event loop.

A sync thread in the gateway process needs the GIL twice per round (to take the request, and
to hand back the result after the syscall); while the event loop thread is busy, each of those
waits for it, which made a 0.4 ms fsync cost 1 ms and more. The helper is a few lines of
Python in its own process (its own GIL): the loop writes one byte per request to its stdin,
the helper fdatasyncs the WAL once for every byte it read so far and writes one byte back per
request ("k" done, "e" failed), and the loop reads the answers with `add_reader`, between
callbacks. A helper that dies or fails a sync fails its waiting rounds and the engine closed.
"""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
from typing import Any, Callable

from gateway.timers import Later

__all__ = ["WalSyncer", "HELPER_CODE"]

HELPER_CODE = r"""
import os, sys
path = sys.argv[1]
sync = getattr(os, "fdatasync", os.fsync)
while True:
    try:
        data = os.read(0, 65536)
    except OSError:
        break
    if not data:
        break
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            sync(fd)
        finally:
            os.close(fd)
        reply = b"k" * len(data)
    except OSError:
        reply = b"e" * len(data)
    while reply:
        reply = reply[os.write(1, reply):]
"""

Done = Callable[[list[Any], "str | None"], None]


class WalSyncer:
    """Requests syncs of one WAL file; `done(deliveries, error)` runs on the loop for each."""

    def __init__(self, wal_path: str, done: Done, *, helper_code: str | None = None) -> None:
        self._done = done
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", helper_code or HELPER_CODE, wal_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to = self._proc.stdin.fileno()
        self._from = self._proc.stdout.fileno()
        os.set_blocking(self._from, False)
        self._inflight: collections.deque[list[Any]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._later = Later(lambda: self.request([]))  # a write-behind sync waiting alone
        self._idle: list[asyncio.Future[None]] = []
        self.failed: str | None = None

    def request(self, deliveries: list[Any]) -> None:
        """Sync everything committed so far, then answer `deliveries` (on this loop)."""
        self._later.cancel()  # this sync covers the write-behind rounds too
        self._watch(asyncio.get_running_loop())
        if self.failed is not None:
            self._done(deliveries, self.failed)
            return
        self._inflight.append(deliveries)
        try:
            os.write(self._to, b"s")
        except OSError:
            self._fail("the audit sync helper is gone")

    def request_soon(self, delay_s: float) -> None:
        """Write-behind rounds: synced with the next request, or after `delay_s` at most."""
        if self.failed is None:
            self._later.arm(delay_s)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._from)
        self._loop = loop
        loop.add_reader(self._from, self._on_reply)

    def _on_reply(self) -> None:
        try:
            data = os.read(self._from, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._fail("the audit sync helper exited")
            return
        for byte in data:
            if not self._inflight:
                break
            deliveries = self._inflight.popleft()
            if byte == ord("k"):
                self._done(deliveries, None)
            else:
                self._fail("the audit trail could not be made durable (fsync failed)", deliveries)
                return
        self._notify_idle()

    def _fail(self, why: str, first: list[Any] | None = None) -> None:
        """Fail the waiting rounds and every later one: a lost sync cannot be redone."""
        if self.failed is None:
            self.failed = why
        if first is not None:
            self._done(first, self.failed)
        while self._inflight:
            self._done(self._inflight.popleft(), self.failed)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._from)
        self._notify_idle()

    def _notify_idle(self) -> None:
        if not self._inflight:
            for fut in self._idle:
                if not fut.done():
                    fut.set_result(None)
            self._idle.clear()

    async def close(self) -> None:
        """Sync what is still owed, wait for the answers, stop the helper."""
        if self._later.pending:
            self.request([])  # (cancels the timer)
        if self._inflight and self.failed is None:
            fut = asyncio.get_running_loop().create_future()
            self._idle.append(fut)
            try:
                await asyncio.wait_for(fut, 30)
            except asyncio.TimeoutError:
                self._fail("the audit sync helper did not answer")
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._from)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
