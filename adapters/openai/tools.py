"""Local functions offered to an OpenAI model, each bound to the gateway tool name it runs as.

OpenAI function names allow only `[A-Za-z0-9_-]`, while gateway tool names are dotted
(`payments.transfer`), so each tool carries both: the name the model sees and the name the
gateway authorizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

__all__ = ["LocalTool", "ToolBox"]

_MODEL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class LocalTool:
    name: str  # what the model calls
    fn: Callable[..., Any]  # sync or async, called with the arguments as keywords
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}})
    gateway_tool: str = ""  # what the gateway authorizes; defaults to `name`

    def __post_init__(self) -> None:
        if not _MODEL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} is not a valid OpenAI function name")

    @property
    def authorized_as(self) -> str:
        return self.gateway_tool or self.name

    def chat_spec(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description,
                             "parameters": dict(self.parameters)}}

    def responses_spec(self) -> dict[str, Any]:
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": dict(self.parameters)}


class ToolBox:
    """The tools of one agent, by model-facing name."""

    def __init__(self, tools: Iterable[LocalTool] = ()) -> None:
        self._tools: dict[str, LocalTool] = {}
        for t in tools:
            self.add(t)

    def add(self, tool: LocalTool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"duplicate tool name {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> LocalTool | None:
        return self._tools.get(name)

    def chat_specs(self) -> list[dict[str, Any]]:
        return [t.chat_spec() for t in self._tools.values()]

    def responses_specs(self) -> list[dict[str, Any]]:
        return [t.responses_spec() for t in self._tools.values()]

    def __len__(self) -> int:
        return len(self._tools)
