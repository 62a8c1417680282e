"""Tool pinning: fingerprint each upstream tool's definition; a changed one is refused.

The fingerprint is the SHA-256 of the RFC 8785 canonical JSON of the definition (name,
description, input schema, annotations). The first sighting pins it; a different definition
later is refused (`tool_changed`) until an admin re-pins, and is recorded once as an audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

import mcp.types as t

from gateway.digest import canonical_json, sha256_hex
from gateway.ports import ToolPinStore

__all__ = ["tool_definition", "tool_fingerprint", "PinCheck", "PinChecker", "ToolPins",
           "GatewayPins"]

ChangedHook = Callable[[str, str, str], Awaitable[None]]


def tool_definition(name: str, tool: t.Tool) -> dict[str, Any]:
    annotations = (tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
                   if tool.annotations is not None else {})
    return {
        "name": name,
        "description": tool.description or "",
        "input_schema": tool.input_schema or {},
        "annotations": annotations,
    }


def tool_fingerprint(name: str, tool: t.Tool) -> str:
    """`name` is the public (namespaced) name, so moving a tool between upstreams re-pins."""
    return sha256_hex(canonical_json(tool_definition(name, tool)))


@dataclass(frozen=True, slots=True)
class PinCheck:
    ok: bool
    fingerprint: str
    pinned: str | None


class PinChecker(Protocol):
    async def check(self, name: str, tool: t.Tool) -> PinCheck: ...


class ToolPins:
    """Pins against a ToolPinStore; `on_changed(tool, old, new)` records the audit event."""

    def __init__(self, store: ToolPinStore, on_changed: ChangedHook | None = None) -> None:
        self._store = store
        self._on_changed = on_changed
        self._reported: set[tuple[str, str]] = set()

    async def check(self, name: str, tool: t.Tool) -> PinCheck:
        fp = tool_fingerprint(name, tool)
        pinned = await self._store.get(name)
        if pinned is None:
            await self._store.pin(name, fp)
            return PinCheck(True, fp, fp)
        if pinned == fp:
            return PinCheck(True, fp, pinned)
        if (name, fp) not in self._reported and self._on_changed is not None:
            await self._on_changed(name, pinned, fp)
            self._reported.add((name, fp))
        return PinCheck(False, fp, pinned)

    async def repin(self, name: str, tool: t.Tool) -> str:
        """The admin's action: accept the current definition."""
        fp = tool_fingerprint(name, tool)
        await self._store.pin(name, fp)
        return fp


class _GatewayPinPort(Protocol):
    async def check_tool_pin(self, tool: str, fingerprint: str) -> bool: ...

    async def record_tool_changed(self, tool: str, old: str, new: str) -> None: ...


class GatewayPins:
    """Pins through the Gateway (its own ToolPinStore), for when the core owns the store."""

    def __init__(self, gateway: _GatewayPinPort) -> None:
        self._gateway = gateway
        self._reported: set[tuple[str, str]] = set()

    async def check(self, name: str, tool: t.Tool) -> PinCheck:
        fp = tool_fingerprint(name, tool)
        if await self._gateway.check_tool_pin(name, fp):
            return PinCheck(True, fp, fp)
        if (name, fp) not in self._reported:
            await self._gateway.record_tool_changed(name, "", fp)
            self._reported.add((name, fp))
        return PinCheck(False, fp, None)
