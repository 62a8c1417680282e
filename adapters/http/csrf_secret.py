"""The web UI's CSRF secret, kept in the data dir.

A per-process secret voided every open form on a restart, and replicas behind one load balancer
disagreed with each other (a form served by one was refused by the next). The secret now lives
in `<data dir>/ui-csrf.key` (32 random bytes, mode 0600), created once by whichever process
starts first; replicas share it the way they share the call-token keys (the same `keys/`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["CSRF_KEY_FILE", "load_csrf_secret"]

CSRF_KEY_FILE = "ui-csrf.key"
_SIZE = 32


def load_csrf_secret(data_dir: Path) -> bytes:
    """Read the secret, or create it (atomically: two processes starting at once agree)."""
    path = Path(data_dir) / CSRF_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) < _SIZE:  # a torn or foreign file: refuse rather than weaken the UI
            raise ValueError(f"{path} does not hold a CSRF secret of {_SIZE} bytes") from None
        return data
    secret = secrets.token_bytes(_SIZE)
    try:
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    return secret
