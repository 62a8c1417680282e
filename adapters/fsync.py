"""Making a directory entry durable: a new or renamed file survives a power loss only once its
directory is synced too."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """fsync `directory`; a no-op where directories cannot be opened (the file itself is
    synced by its writer)."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
