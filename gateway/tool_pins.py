"""Tool pinning: the first definition seen of an upstream tool is pinned; a changed one is
refused (`tool_changed`) until an admin re-pins it. Every step is an audit event."""

from __future__ import annotations

from .clock import Clock
from .errors import GatewayError
from .model import Principal, Role
from .ports import AuditEvent, AuditLog, ToolPinStore

__all__ = ["ToolPins"]


class ToolPins:
    def __init__(self, store: ToolPinStore | None, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    async def check(self, tool: str, fingerprint: str) -> bool:
        """True when the tool is pinned to this fingerprint (pinning it if it is new)."""
        if self._store is None:
            return True
        pinned = await self._store.get(tool)
        if pinned is None:
            await self._store.pin(tool, fingerprint)
            await self._audit.append(AuditEvent(type="tool.pinned", actor="gateway",
                                                ts=self._clock.now(),
                                                data={"tool": tool, "fingerprint": fingerprint}))
            return True
        return pinned == fingerprint

    async def changed(self, tool: str, old: str, new: str) -> None:
        await self._audit.append(AuditEvent(type="tool.changed", actor="gateway",
                                            ts=self._clock.now(),
                                            data={"tool": tool, "pinned": old, "seen": new}))

    async def repin(self, principal: Principal, tool: str, fingerprint: str) -> None:
        if principal.role is not Role.ADMIN:
            raise GatewayError("forbidden", "only an admin re-pins a tool")
        if self._store is None:
            return
        await self._audit.append(AuditEvent(type="tool.repinned", actor=principal.id,
                                            ts=self._clock.now(),
                                            data={"tool": tool, "fingerprint": fingerprint}))
        await self._store.pin(tool, fingerprint)
