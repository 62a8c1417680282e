"""LangGraph / LangChain adapter: every tool call authorized by JITGate before it executes.

Two hooks over one core:
- `ToolNode(tools, awrap_tool_call=LangGraphGate(gate))` for hand-built graphs;
- `create_agent(model, tools, middleware=[JITGateMiddleware(gate)])` for LangChain agents.

A refusal is a `ToolMessage(status="error")` with the code and decision id, so the model reads
it and the graph goes on; the tool's output is reported back for the drift detectors.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage

from adapters.client.gate import ToolGate
from adapters.client.result import GatewayClientError

__all__ = ["LangGraphGate", "JITGateMiddleware"]

Execute = Callable[[Any], Awaitable[Any]]


def _content_of(result: Any) -> Any:
    if isinstance(result, ToolMessage):
        return result.content
    return str(result)


class LangGraphGate:
    """An `awrap_tool_call` interceptor: `await gate(request, execute)`."""

    def __init__(self, gate: ToolGate, *, tool_names: Mapping[str, str] | None = None,
                 gateway_name: Callable[[str], str] | None = None) -> None:
        self.gate = gate
        self._names = dict(tool_names or {})
        self._name_fn = gateway_name

    def gateway_tool(self, name: str) -> str:
        if name in self._names:
            return self._names[name]
        return self._name_fn(name) if self._name_fn is not None else name

    async def __call__(self, request: Any, execute: Execute) -> Any:
        call = request.tool_call
        name, call_id = call["name"], call.get("id") or ""
        args = call.get("args") or {}
        verdict = await self.gate.check(self.gateway_tool(name), args, call_id or None)
        if isinstance(verdict, GatewayClientError):
            text = f"JITGate refused this call; it did not run (code={verdict.code})."
            return ToolMessage(content=text, tool_call_id=call_id, name=name, status="error")
        if not verdict.allowed:
            return ToolMessage(content=verdict.refusal_text(), tool_call_id=call_id, name=name,
                               status="error")
        try:
            result = await execute(request)
        except Exception as exc:
            await self.gate.report(verdict, False, None, type(exc).__name__)
            raise
        ok = not (isinstance(result, ToolMessage) and result.status == "error")
        await self.gate.report(verdict, ok, _content_of(result),
                               None if ok else "tool_error")
        return result


class JITGateMiddleware(AgentMiddleware):
    """`create_agent(..., middleware=[JITGateMiddleware(gate)])`."""

    def __init__(self, gate: ToolGate, *, tool_names: Mapping[str, str] | None = None,
                 gateway_name: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._core = LangGraphGate(gate, tool_names=tool_names, gateway_name=gateway_name)

    @property
    def name(self) -> str:
        return "jitgate"

    async def awrap_tool_call(self, request: Any, handler: Execute) -> Any:
        return await self._core(request, handler)
