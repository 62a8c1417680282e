"""Tool pinning: fingerprint each upstream tool's definition; a changed one is refused.

The fingerprint is the SHA-256 of the RFC 8785 canonical JSON of the definition: every field
JITGate shows its clients (see `RoutedTool.public_definition`): name, title, description, input
schema, annotations. `title` joins the definition only when the tool has one, so tools without a
title keep the fingerprints they were pinned with before it was covered. A definition RFC 8785
cannot encode (integers beyond 2**53 in a schema) is hashed from its sorted-key JSON instead.
The first sighting pins it; a different definition later is refused (`tool_changed`), and
hidden from tools/list, until an admin re-pins, and is recorded once as an audit event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

import mcp.types as t

from gateway.digest import canonical_json, sha256_hex
from gateway.ports import ToolPinStore

__all__ = ["tool_definition", "tool_fingerprint", "PinCheck", "PinChecker", "ToolPins",
           "GatewayPins", "repin_current"]

ChangedHook = Callable[[str, str, str], Awaitable[None]]


def tool_definition(name: str, tool: t.Tool) -> dict[str, Any]:
    annotations = (tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
                   if tool.annotations is not None else {})
    definition: dict[str, Any] = {
        "name": name,
        "description": tool.description or "",
        "input_schema": tool.input_schema or {},
        "annotations": annotations,
    }
    if tool.title:
        definition["title"] = tool.title
    return definition


def tool_fingerprint(name: str, tool: t.Tool) -> str:
    """`name` is the public (namespaced) name, so moving a tool between upstreams re-pins."""
    definition = tool_definition(name, tool)
    try:
        data = canonical_json(definition)
    except Exception:  # noqa: BLE001 - e.g. rfc8785.IntegerDomainError
        data = json.dumps(definition, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                          default=repr).encode()
    return sha256_hex(data)


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
    """Pins through the Gateway (its own ToolPinStore), for when the core owns the store.

    A confirmed match is remembered for `confirm_ttl_s` (gateway clock), so the hot path does
    not read the pin store on every call; a changed definition has a new fingerprint and is
    always checked against the store. The fingerprint of a listed tool object is computed once.
    """

    def __init__(self, gateway: _GatewayPinPort, *, confirm_ttl_s: float = 5.0) -> None:
        self._gateway = gateway
        self._reported: set[tuple[str, str]] = set()
        self._ttl = confirm_ttl_s
        self._confirmed: dict[tuple[str, str], float] = {}  # (tool, fingerprint) -> until
        self._fps: dict[str, tuple[t.Tool, str]] = {}  # tool -> (definition object, fingerprint)

    def _fingerprint(self, name: str, tool: t.Tool) -> str:
        hit = self._fps.get(name)
        if hit is not None and hit[0] is tool:
            return hit[1]
        fp = tool_fingerprint(name, tool)
        if len(self._fps) > 10_000:
            self._fps.clear()
        self._fps[name] = (tool, fp)
        return fp

    def _now(self) -> float:
        clock = getattr(self._gateway, "clock", None)
        return float(clock.now()) if clock is not None else 0.0

    async def check(self, name: str, tool: t.Tool) -> PinCheck:
        fp = self._fingerprint(name, tool)
        now = self._now()
        if self._confirmed.get((name, fp), float("-inf")) > now:
            return PinCheck(True, fp, fp)
        if await self._gateway.check_tool_pin(name, fp):
            if len(self._confirmed) > 10_000:
                self._confirmed.clear()
            if self._ttl > 0:
                self._confirmed[(name, fp)] = now + self._ttl
            return PinCheck(True, fp, fp)
        self._confirmed.pop((name, fp), None)
        if (name, fp) not in self._reported:
            store = getattr(self._gateway, "pins", None)  # the pinned fingerprint, for the record
            old = (await store.get(name) if store is not None else None) or ""
            await self._gateway.record_tool_changed(name, old, fp)
            self._reported.add((name, fp))
        return PinCheck(False, fp, None)


class _RepinPort(Protocol):
    async def repin_tool(self, principal: Any, tool: str, fingerprint: str) -> None: ...


async def repin_current(gateway: _RepinPort, upstreams: Any, admin: Any, public_name: str) -> str:
    """The admin's re-pin: accept the definition the upstream serves now for `public_name`.

    Raises LookupError when no connected upstream serves that tool; the gateway refuses a
    non-admin (`forbidden`). Returns the new fingerprint.
    """
    routed = await upstreams.find_tool(public_name)
    if routed is None:
        raise LookupError(public_name)
    fp = tool_fingerprint(public_name, routed.tool)
    await gateway.repin_tool(admin, public_name, fp)
    return fp
