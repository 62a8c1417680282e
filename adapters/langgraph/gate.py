"""LangGraph / LangChain adapter: every tool call authorized by JITGate before it executes.

Two hooks over one core, each with a synchronous and an asynchronous side:
- hand-built graphs: give the ToolNode BOTH wrappers (a ToolNode with only `awrap_tool_call`
  runs its tools unchecked under the synchronous `invoke`/`stream`):

      gate = LangGraphGate(ToolGate(client, grant), sync_gate=SyncToolGate(sync_client, grant))
      node = ToolNode(tools, wrap_tool_call=gate.wrap_tool_call,
                      awrap_tool_call=gate.awrap_tool_call)     # or gate.tool_node(tools)

- LangChain agents: `create_agent(model, tools, middleware=[JITGateMiddleware(gate, ...)])`;
  list it last among middlewares that rewrite tool calls, so it sees the call the tool runs.

The synchronous side authorizes through a `SyncToolGate` (a `SyncGatewayClient`); without one
it refuses every call (`sync_unavailable`) and runs nothing: an in-process gateway lives on its
event loop, which a synchronous run may be blocking. The asynchronous side uses the `ToolGate`
(or, given only a `SyncToolGate`, runs it in a worker thread).

What is authorized is what the tool will receive: the model's arguments validated with the
tool's own `args_schema`. If that validation would change a value the model sent (`"5000"`
read as `5000`), the call is refused (`invalid_arguments`) without asking the gateway.

A refusal is a `ToolMessage(status="error")` with the code and decision id, so the model reads
it and the graph goes on; the tool's output is reported back for the drift detectors.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Mapping, Sequence

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage
from langchain_core.utils.pydantic import get_fields
from pydantic import BaseModel, ValidationError

from adapters.client.arguments import ArgumentsChanged, invalid_arguments_text, received_arguments
from adapters.client.gate import SyncToolGate, ToolGate, arguments_error
from adapters.client.result import AuthorizeResult, GatewayClientError

__all__ = ["LangGraphGate", "JITGateMiddleware", "tool_arguments"]

log = logging.getLogger("jitgate.adapters")

Execute = Callable[[Any], Awaitable[Any]]
SyncExecute = Callable[[Any], Any]

_SYNC_UNAVAILABLE = (
    "JITGate refused this call; it did not run (code=sync_unavailable). The graph runs "
    "synchronously and the JITGate gate has no synchronous client: run it with ainvoke/astream, "
    "or give the gate sync_gate=SyncToolGate(SyncGatewayClient(...)).")


def _content_of(result: Any) -> Any:
    if isinstance(result, ToolMessage):
        return result.content
    return str(result)


def _has_validators(schema: type[BaseModel]) -> bool:
    decorators = getattr(schema, "__pydantic_decorators__", None)
    if decorators is None:
        return True  # not a pydantic v2 model: cannot tell
    return bool(decorators.validators or decorators.field_validators or decorators.root_validators
                or decorators.model_validators
                or getattr(schema, "__pydantic_post_init__", None))


def tool_arguments(tool: Any, args: Mapping[str, Any], call_id: str | None) -> dict[str, Any]:
    """The arguments `tool` will receive for the model's `args`, as plain JSON, to authorize.

    Raises `ArgumentsChanged` when the tool's validation would change a value the model sent,
    rejects the arguments, or cannot be reproduced here.
    """
    schema = getattr(tool, "args_schema", None) if tool is not None else None
    if not isinstance(schema, type):  # no tool, no schema or a JSON schema: received as sent
        return received_arguments(args, args)
    model_schema = tool.tool_call_schema
    injected = (set(get_fields(schema)) - set(get_fields(model_schema))
                if isinstance(model_schema, type) else set())
    try:
        if not injected:  # exactly the tool's own parsing (ToolNode passes the args as they are)
            received = tool._parse_input(dict(args), call_id)
        elif (issubclass(schema, BaseModel) and issubclass(model_schema, BaseModel)
              and not _has_validators(schema)):
            # state/runtime are injected after this point: check the model's part of the schema
            validated = model_schema.model_validate(dict(args))
            fields = get_fields(model_schema)
            received = {k: getattr(validated, k) for k in fields
                        if k in args or k in validated.model_fields_set
                        or not fields[k].is_required()}
        else:
            raise ArgumentsChanged("JITGate cannot reproduce this tool's argument validation")
    except ArgumentsChanged:
        raise
    except (ValidationError, ValueError, TypeError) as exc:
        raise ArgumentsChanged("the arguments do not match the tool's parameters") from exc
    if not isinstance(received, Mapping):
        raise ArgumentsChanged("the tool reads its input as text, not as named arguments")
    return received_arguments(args, {k: v for k, v in received.items() if k not in injected})


class LangGraphGate:
    """`wrap_tool_call` / `awrap_tool_call` interceptors for a ToolNode (`await gate(...)` too)."""

    def __init__(self, gate: ToolGate | SyncToolGate, *, sync_gate: SyncToolGate | None = None,
                 tool_names: Mapping[str, str] | None = None,
                 gateway_name: Callable[[str], str] | None = None) -> None:
        if not isinstance(gate, (ToolGate, SyncToolGate)):
            raise TypeError("LangGraphGate needs a ToolGate or a SyncToolGate")
        self.gate = gate
        self._async = gate if isinstance(gate, ToolGate) else None
        self._sync = sync_gate if sync_gate is not None else (
            gate if isinstance(gate, SyncToolGate) else None)
        self._names = dict(tool_names or {})
        self._name_fn = gateway_name

    def gateway_tool(self, name: str) -> str:
        if name in self._names:
            return self._names[name]
        return self._name_fn(name) if self._name_fn is not None else name

    def tool_node(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        """A `ToolNode` over `tools` with both interceptors in place."""
        from langgraph.prebuilt import ToolNode

        return ToolNode(tools, wrap_tool_call=self.wrap_tool_call,
                        awrap_tool_call=self.awrap_tool_call, **kwargs)

    def _prepare(self, request: Any) -> tuple[str, str, str, dict[str, Any]] | ToolMessage:
        """(model name, call id, gateway tool, arguments to authorize), or the local refusal."""
        call = request.tool_call
        name, call_id = call["name"], call.get("id") or ""
        args = call.get("args") or {}
        bad = arguments_error(args)
        if bad is not None:
            return ToolMessage(content=f"JITGate refused this call; it did not run "
                               f"(code={bad.code}). {bad.message[:1].upper()}{bad.message[1:]}.",
                               tool_call_id=call_id, name=name, status="error")
        try:
            authorized = tool_arguments(getattr(request, "tool", None), args, call_id or None)
        except ArgumentsChanged as exc:
            log.warning("jitgate refused %s locally: invalid_arguments", name)
            return ToolMessage(content=invalid_arguments_text(exc), tool_call_id=call_id,
                               name=name, status="error")
        return name, call_id, self.gateway_tool(name), authorized

    @staticmethod
    def _refusal(verdict: AuthorizeResult | GatewayClientError, name: str,
                 call_id: str) -> ToolMessage | None:
        if isinstance(verdict, GatewayClientError):
            text = f"JITGate refused this call; it did not run (code={verdict.code})."
            return ToolMessage(content=text, tool_call_id=call_id, name=name, status="error")
        if not verdict.allowed:
            return ToolMessage(content=verdict.refusal_text(), tool_call_id=call_id, name=name,
                               status="error")
        return None

    @staticmethod
    def _outcome(result: Any) -> tuple[bool, Any, str | None]:
        ok = not (isinstance(result, ToolMessage) and result.status == "error")
        return ok, _content_of(result), None if ok else "tool_error"

    async def awrap_tool_call(self, request: Any, execute: Execute) -> Any:
        prepared = self._prepare(request)
        if isinstance(prepared, ToolMessage):
            return prepared
        name, call_id, tool, args = prepared
        if self._async is not None:
            verdict = await self._async.check(tool, args, call_id or None)
        else:
            assert self._sync is not None
            verdict = await asyncio.to_thread(self._sync.check, tool, args, call_id or None)
        refusal = self._refusal(verdict, name, call_id)
        if refusal is not None:
            return refusal
        assert isinstance(verdict, AuthorizeResult)
        try:
            result = await execute(request)
        except Exception as exc:
            await self._areport(verdict, False, None, type(exc).__name__)
            raise
        await self._areport(verdict, *self._outcome(result))
        return result

    __call__ = awrap_tool_call

    async def _areport(self, verdict: AuthorizeResult, ok: bool, output: Any,
                       error: str | None) -> None:
        if self._async is not None:
            await self._async.report(verdict, ok, output, error)
        elif self._sync is not None:
            await asyncio.to_thread(self._sync.report, verdict, ok, output, error)

    def wrap_tool_call(self, request: Any, execute: SyncExecute) -> Any:
        prepared = self._prepare(request)
        if isinstance(prepared, ToolMessage):
            return prepared
        name, call_id, tool, args = prepared
        if self._sync is None:
            log.warning("jitgate refused %s: a synchronous run and no synchronous client", name)
            return ToolMessage(content=_SYNC_UNAVAILABLE, tool_call_id=call_id, name=name,
                               status="error")
        verdict = self._sync.check(tool, args, call_id or None)
        refusal = self._refusal(verdict, name, call_id)
        if refusal is not None:
            return refusal
        assert isinstance(verdict, AuthorizeResult)
        try:
            result = execute(request)
        except Exception as exc:
            self._sync.report(verdict, False, None, type(exc).__name__)
            raise
        self._sync.report(verdict, *self._outcome(result))
        return result


class JITGateMiddleware(AgentMiddleware):
    """`create_agent(..., middleware=[JITGateMiddleware(gate, sync_gate=...)])`."""

    def __init__(self, gate: ToolGate | SyncToolGate, *, sync_gate: SyncToolGate | None = None,
                 tool_names: Mapping[str, str] | None = None,
                 gateway_name: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._core = LangGraphGate(gate, sync_gate=sync_gate, tool_names=tool_names,
                                   gateway_name=gateway_name)

    @property
    def name(self) -> str:
        return "jitgate"

    def wrap_tool_call(self, request: Any, handler: SyncExecute) -> Any:
        return self._core.wrap_tool_call(request, handler)

    async def awrap_tool_call(self, request: Any, handler: Execute) -> Any:
        return await self._core.awrap_tool_call(request, handler)
