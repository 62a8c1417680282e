"""The web UI's CSRF secret, kept in the data dir.

A per-process secret voided every open form on a restart, and replicas behind one load balancer
disagreed with each other (a form served by one was refused by the next). The secret now lives
in `<data dir>/ui-csrf.key` (32 random bytes, mode 0600), created once by whichever process
starts first; replicas share it the way they share the call-token keys (the same `keys/`).

Creation is atomic: the secret is written and fsynced in a private temp file beside the key
file, then hard-linked into place. The key file therefore never exists empty or half written;
a process that loses the race (the link finds a file there) reads the winner's secret.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from adapters.fsync import fsync_dir

__all__ = ["CSRF_KEY_FILE", "CsrfSecretError", "load_csrf_secret"]

CSRF_KEY_FILE = "ui-csrf.key"
_SIZE = 32


class CsrfSecretError(ValueError):
    """The key file exists but does not hold a secret (torn by an older version, or foreign)."""


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) < _SIZE:  # refuse rather than weaken the UI
        raise CsrfSecretError(f"{path} does not hold a CSRF secret of {_SIZE} bytes "
                              f"({len(data)} bytes); remove it and restart to create a new one")
    return data


def load_csrf_secret(data_dir: Path) -> bytes:
    """Read the secret, or create it (atomically: two processes starting at once agree)."""
    path = Path(data_dir) / CSRF_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(_SIZE)
    tmp = path.with_name(f".{CSRF_KEY_FILE}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(secret)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces a file another process put there
        except FileExistsError:
            return _read(path)  # another process won: its file is complete
        fsync_dir(path.parent)
        return secret
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
