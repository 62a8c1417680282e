"""Fault injection for the SQLite engine's sync helper (a real process running a variant of
`adapters.storage.wal_sync.HELPER_CODE`), steered through files next to the WAL:

  <wal>.hold   while it exists, syncs wait;
  <wal>.fail   while it exists, syncs fail (as an fsync returning EIO would);
  <wal>.log    one line per completed sync.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import adapters.storage.sqlite_engine as engine_mod
from adapters.storage.wal_sync import HELPER_CODE

__all__ = ["WalFaults", "install_wal_faults"]

_WAIT = "    try:\n        fd = os.open(path, os.O_RDONLY)\n"
_SYNC = "            sync(fd)\n"
_OK = '        reply = b"k" * len(data)\n'


def _faulty_helper() -> str:
    for needle in (_WAIT, _SYNC, _OK):
        assert needle in HELPER_CODE, f"the helper changed: {needle!r}"
    return (HELPER_CODE
            .replace(_WAIT, "    while os.path.exists(path + '.hold'):\n"
                            "        __import__('time').sleep(0.002)\n" + _WAIT, 1)
            .replace(_SYNC, "            if os.path.exists(path + '.fail'):\n"
                            "                raise OSError(5, 'Input/output error')\n" + _SYNC, 1)
            .replace(_OK, _OK + "        open(path + '.log', 'a').write('synced\\n')\n", 1))


class WalFaults:
    def __init__(self, db: Path) -> None:
        self.wal = Path(f"{db}-wal")

    def _flag(self, name: str, on: bool) -> None:
        flag = Path(f"{self.wal}.{name}")
        if on:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def hold(self, on: bool = True) -> None:
        self._flag("hold", on)

    def fail(self, on: bool = True) -> None:
        self._flag("fail", on)

    def synced(self) -> int:
        log = Path(f"{self.wal}.log")
        return len(log.read_text().splitlines()) if log.exists() else 0


def install_wal_faults(monkeypatch: pytest.MonkeyPatch, db: Path) -> WalFaults:
    """Engines opened from now on (in this process) use the steerable helper for `db`."""
    monkeypatch.setattr(engine_mod, "_HELPER_CODE", _faulty_helper())
    return WalFaults(db)
