"""Identifiers: random, prefixed by what they name, safe to log.

96 random bits each, drawn from a buffer the OS refills (one syscall per 256 ids), so minting
an id on the hot path costs no syscall.
"""

from __future__ import annotations

import base64
import os
import threading

__all__ = ["new_id"]

_ID_BYTES = 12
_BATCH = 256
_lock = threading.Lock()
_buf = b""
_pos = 0


def _take() -> bytes:
    global _buf, _pos
    with _lock:
        if _pos + _ID_BYTES > len(_buf):
            _buf, _pos = os.urandom(_ID_BYTES * _BATCH), 0
        chunk = _buf[_pos:_pos + _ID_BYTES]
        _pos += _ID_BYTES
        return chunk


def _reset_after_fork() -> None:
    global _buf, _pos, _lock
    _buf, _pos, _lock = b"", 0, threading.Lock()


# A forked child must never hand out the ids its parent's buffer still holds.
os.register_at_fork(after_in_child=_reset_after_fork)


def new_id(prefix: str) -> str:
    return f"{prefix}_{base64.urlsafe_b64encode(_take()).decode()}"
