"""Per-caller state of the MCP edge, bounded: the grant a caller bound in band, and the legacy
sessions to notify of tool-list changes.

The SDK does not tell a handler when a connection closes (and its notifications never raise),
so nothing here can be dropped on close: every map forgets its least recently used entries
beyond a cap instead. A forgotten legacy session misses list-changed notifications (its client
still sees the current list on its next tools/list); a forgotten in-band grant binding makes
the caller's next calls go without that grant (refused `no_grant`: fail closed).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Generic, Iterator, TypeVar

__all__ = ["LruMap", "Sessions"]

log = logging.getLogger("jitgate.mcp.sessions")

K = TypeVar("K")
V = TypeVar("V")


class LruMap(Generic[K, V]):
    """A mapping that keeps at most `cap` entries, forgetting the least recently used."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._d: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key not in self._d:
            return None
        self._d.move_to_end(key)
        return self._d[key]

    def peek(self, key: K) -> V | None:
        """Like `get`, without counting as a use."""
        return self._d.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def __setitem__(self, key: K, value: V) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self._cap:
            self._d.popitem(last=False)

    def update(self, items: dict[K, V]) -> None:
        for key, value in items.items():
            self[key] = value

    def pop(self, key: K) -> V | None:
        return self._d.pop(key, None)

    def items(self) -> Iterator[tuple[K, V]]:
        return iter(list(self._d.items()))


class Sessions:
    """Caller key (`principal:session`) -> the grant bound in band, and the legacy session
    with the grant its last request used."""

    def __init__(self, *, max_sessions: int = 1024, max_bindings: int = 10_000) -> None:
        self._bound: LruMap[str, str | None] = LruMap(max_bindings)
        self._legacy: LruMap[str, tuple[Any, str | None]] = LruMap(max_sessions)

    def is_bound(self, key: str) -> bool:
        return key in self._bound

    def bound(self, key: str) -> str | None:
        return self._bound.get(key)

    def bind(self, key: str, grant_id: str | None) -> None:
        self._bound[key] = grant_id
        hit = self._legacy.get(key)
        if hit is not None:
            self._legacy[key] = (hit[0], grant_id)

    def seen(self, key: str, session: Any, grant_id: str | None) -> None:
        """A legacy-era request on `session`: notify it of list changes from now on."""
        self._legacy[key] = (session, grant_id)

    def __len__(self) -> int:
        return len(self._legacy)

    async def notify_tools_changed(self, grant_id: str | None = None) -> None:
        """Send tools/list_changed to every legacy session, or only to those using `grant_id`."""
        for key, (session, used) in self._legacy.items():
            if grant_id is not None and used != grant_id and self._bound.peek(key) != grant_id:
                continue
            try:
                await session.send_tool_list_changed()
            except Exception:  # noqa: BLE001 - a gone session is forgotten
                self._legacy.pop(key)
