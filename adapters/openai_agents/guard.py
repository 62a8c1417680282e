"""JITGate as the OpenAI Agents SDK's own hooks for function tools.

- a **tool input guardrail** authorizes each call before the tool runs; a refusal is
  `reject_content(...)`, so the model reads it as the tool's output and the run goes on;
- a **tool output guardrail** reports the outcome back for the audit trail and drift detectors:
  the output, or `ok=False` with `tool_error` when the tool raised (the SDK hands the model an
  error text instead; the guard watches the tool's invoker to know) and `cancelled` when it was
  cancelled or timed out;
- `needs_approval` surfaces a `review` decision through the SDK's approval mechanism:
  the run stops with `result.interruptions`; once a JITGate reviewer approved the exact call,
  `state.approve(item)` and `Runner.run(agent, state)` run it (the guardrail asks again and gets
  `allowed_by_approval`). Approving in the SDK alone never runs the tool: the input guardrail
  runs after every SDK approval and refuses whatever JITGate does not allow.

What is authorized is what the function will receive: the model's JSON validated with the
tool's own parameter model (the one `@function_tool` built from the function's signature), as
plain JSON, schema defaults included. If that validation would change a value the model sent
(`"5000"` read as `5000`), the call is refused (`invalid_arguments`) and nothing runs. A
hand-made `FunctionTool` receives the JSON text itself, so its parsed arguments are authorized.

    guard = AgentsGuard(ToolGate(client, grant_id))
    agent = Agent(..., tools=guard.protect([transfer, lookup]))
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
from typing import Any, Callable, Iterable, Mapping

from agents import (
    FunctionTool,
    RunContextWrapper,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
)
from agents.function_schema import function_schema
from pydantic import ValidationError

from adapters.client.arguments import (
    ArgumentsChanged,
    invalid_arguments_text,
    model_fields_received,
    received_arguments,
)
from adapters.client.gate import ToolGate
from adapters.client.result import AuthorizeResult, GatewayClientError

__all__ = ["AgentsGuard", "argument_reader", "pending_reviews"]

log = logging.getLogger("jitgate.adapters")

# `reader(model_arguments) -> the arguments the tool receives`; raises ArgumentsChanged.
ArgumentReader = Callable[[Mapping[str, Any]], dict[str, Any]]

_NOT_AN_OBJECT = ("JITGate refused this call; it did not run (code=invalid_arguments). "
                  "The arguments are not a JSON object.")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _parse(raw: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or "{}", parse_constant=_not_json)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _key(tool: str, args: Mapping[str, Any]) -> str:
    return json.dumps([tool, args], sort_keys=True)


def _as_sent(raw: Mapping[str, Any]) -> dict[str, Any]:
    return received_arguments(raw, raw)


def argument_reader(tool: FunctionTool) -> ArgumentReader | None:
    """How `tool` reads the model's arguments, or None if JITGate cannot reproduce it.

    A `@function_tool` validates the JSON with a pydantic model built from the function's
    signature; the same model is rebuilt here (`agents.function_schema`), once per tool.
    """
    try:
        fn = tool.__wrapped__
    except AttributeError:  # a hand-made FunctionTool: its invoker gets the JSON text itself
        return _as_sent
    if not (inspect.isroutine(fn) or inspect.isclass(fn)):
        return None  # a callable object: function_tool adapts it in ways not reproduced here
    try:
        model = function_schema(fn, use_docstring_info=False,
                                strict_json_schema=tool.strict_json_schema).params_pydantic_model
    except Exception:
        return None

    def read(raw: Mapping[str, Any]) -> dict[str, Any]:
        try:
            parsed = model(**raw) if raw else model()
        except ValidationError as exc:
            raise ArgumentsChanged("the arguments do not match the tool's parameters") from exc
        try:
            fields = model_fields_received(parsed)
        except ValueError as exc:
            raise ArgumentsChanged("JITGate cannot read this tool's parameters") from exc
        return received_arguments(raw, fields)

    return read


class AgentsGuard:
    """Guardrails and approval checks that send every function tool call through a ToolGate."""

    def __init__(self, gate: ToolGate, *, tool_names: Mapping[str, str] | None = None,
                 gateway_name: Callable[[str], str] | None = None) -> None:
        self.gate = gate
        self._names = dict(tool_names or {})
        self._name_fn = gateway_name
        # tool_call_id -> (gateway tool + arguments key, decision) decided, not yet run
        self._open: dict[str, tuple[str, AuthorizeResult]] = {}
        self._running: dict[str, AuthorizeResult] = {}  # tool_call_id -> allowed, running
        self._failed: dict[str, str] = {}  # tool_call_id -> error code, the tool raised
        self._readers: dict[int, tuple[FunctionTool, ArgumentReader | None]] = {}
        # for tools wired by hand: the guardrail finds the tool on the agent by name
        self.input_guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self._check_input_by_name, name="jitgate_authorize")
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(
            guardrail_function=self._report_output, name="jitgate_report")

    def gateway_tool(self, name: str) -> str:
        if name in self._names:
            return self._names[name]
        return self._name_fn(name) if self._name_fn is not None else name

    def decision_for(self, call_id: str) -> AuthorizeResult | None:
        entry = self._open.get(call_id)
        return entry[1] if entry is not None else None

    def _reader(self, tool: FunctionTool) -> ArgumentReader | None:
        entry = self._readers.get(id(tool))
        if entry is None or entry[0] is not tool:
            entry = (tool, argument_reader(tool))
            self._readers[id(tool)] = entry
        return entry[1]

    def _arguments(self, reader: ArgumentReader | None, raw_json: str | None
                   ) -> dict[str, Any] | str:
        """The arguments to authorize, or the refusal text the model reads."""
        raw = _parse(raw_json)
        if raw is None:
            return _NOT_AN_OBJECT
        try:
            if reader is None:
                raise ArgumentsChanged("JITGate cannot reproduce this tool's argument validation")
            return reader(raw)
        except ArgumentsChanged as exc:
            return invalid_arguments_text(exc)

    async def _check_input_by_name(self, data: ToolInputGuardrailData
                                   ) -> ToolGuardrailFunctionOutput:
        name = data.context.tool_name
        tools = [t for t in getattr(data.agent, "tools", None) or []
                 if isinstance(t, FunctionTool) and t.name == name]
        reader = self._reader(tools[0]) if len(tools) == 1 else None
        return await self._check_input(data, reader)

    async def _check_input(self, data: ToolInputGuardrailData,
                           reader: ArgumentReader | None) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        call_id = ctx.tool_call_id
        self._failed.pop(call_id, None)
        args = self._arguments(reader, ctx.tool_arguments)
        if isinstance(args, str):
            self._open.pop(call_id, None)
            log.warning("jitgate refused %s locally: invalid_arguments", ctx.tool_name)
            return ToolGuardrailFunctionOutput.reject_content(args,
                                                              output_info="invalid_arguments")
        tool = self.gateway_tool(ctx.tool_name)
        cached = self._open.pop(call_id, None)
        verdict: AuthorizeResult | GatewayClientError
        if cached is not None and cached[0] == _key(tool, args) and not cached[1].needs_review:
            verdict = cached[1]  # decided by the approval check just before: one decision per call
        else:  # no decision yet, or a review the SDK's approval let through: ask again
            verdict = await self.gate.check(tool, args, call_id)
        if isinstance(verdict, GatewayClientError):
            return ToolGuardrailFunctionOutput.reject_content(
                f"JITGate refused this call; it did not run (code={verdict.code}).",
                output_info=verdict.code)
        if not verdict.allowed:
            self._open[call_id] = (_key(tool, args), verdict)
            return ToolGuardrailFunctionOutput.reject_content(verdict.refusal_text(),
                                                              output_info=verdict.code)
        self._running[call_id] = verdict
        return ToolGuardrailFunctionOutput.allow(output_info=verdict.decision_id)

    async def _report_output(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        call_id = data.context.tool_call_id
        verdict = self._running.pop(call_id, None)
        failure = self._failed.pop(call_id, None)
        if verdict is not None:
            if failure is None:
                await self.gate.report(verdict, True, data.output)
            else:  # the output is the SDK's error text, not the tool's
                await self.gate.report(verdict, False, None, failure)
        return ToolGuardrailFunctionOutput.allow()

    def _watch_failures(self, tool: FunctionTool) -> None:
        """Note each call in which the tool raised, before the SDK turns it into error text.

        The SDK's invoker for `@function_tool` catches the exception and returns its
        `failure_error_function`'s text; the guard wraps the function call inside it, so the
        SDK's failure handling, approvals and `__wrapped__` all stay as they are. A hand-made
        invoker's exception is not caught by the SDK, so there is nothing to watch.
        """
        invoker = tool.on_invoke_tool
        impl = getattr(invoker, "_invoke_tool_impl", None)
        if impl is None or not callable(impl):
            return
        failed = self._failed

        def mark(ctx: Any, code: str) -> None:
            call_id = getattr(ctx, "tool_call_id", None)
            if call_id:
                failed[call_id] = code

        @functools.wraps(impl)
        async def watched(ctx: Any, input: str) -> Any:
            try:
                return await impl(ctx, input)
            except asyncio.CancelledError:  # cancelled, or timed out (the SDK cancels it)
                mark(ctx, "cancelled")
                raise
            except Exception:
                mark(ctx, "tool_error")
                raise

        invoker._invoke_tool_impl = watched

    def approval_check(self, tool: FunctionTool | str) -> Callable[..., Any]:
        """A `needs_approval` callable for one tool: True when JITGate answers `review`."""
        if isinstance(tool, FunctionTool):
            name, reader = tool.name, self._reader(tool)
        else:
            name, reader = tool, None

        async def needs_approval(_ctx: RunContextWrapper[Any], params: dict[str, Any],
                                 call_id: str) -> bool:
            try:
                args = reader(params) if reader is not None else _as_sent(params)
            except ArgumentsChanged:
                return False  # the input guardrail refuses it; nothing runs
            gateway_tool = self.gateway_tool(name)
            verdict = await self.gate.check(gateway_tool, args, call_id)
            if not isinstance(verdict, AuthorizeResult):
                return False  # the input guardrail asks again and refuses
            self._open[call_id] = (_key(gateway_tool, args), verdict)
            return verdict.needs_review

        return needs_approval

    def protect(self, tools: Iterable[FunctionTool], *, approvals: bool = True
                ) -> list[FunctionTool]:
        """Add the guardrails (and the approval check) to each function tool, in place.

        Raises ValueError for a tool whose argument validation JITGate cannot reproduce (a
        callable object given to `function_tool`): wrap it in a plain function.
        """
        out = []
        for tool in tools:
            reader = self._reader(tool)
            if reader is None:
                raise ValueError(f"JITGate cannot read how tool {tool.name!r} validates its "
                                 "arguments; give function_tool a plain function")

            async def authorize(data: ToolInputGuardrailData, _reader: ArgumentReader = reader
                                ) -> ToolGuardrailFunctionOutput:
                return await self._check_input(data, _reader)

            tool.tool_input_guardrails = [
                *(tool.tool_input_guardrails or []),
                ToolInputGuardrail(guardrail_function=authorize, name="jitgate_authorize")]
            tool.tool_output_guardrails = [*(tool.tool_output_guardrails or []),
                                           self.output_guardrail]
            self._watch_failures(tool)
            if approvals:
                tool.needs_approval = self.approval_check(tool)
            out.append(tool)
        return out


def pending_reviews(guard: AgentsGuard, result: Any) -> list[tuple[Any, str | None]]:
    """The run's interruptions, each with the JITGate approval id a reviewer must decide."""
    out = []
    for item in getattr(result, "interruptions", None) or []:
        raw = getattr(item, "raw_item", None)
        call_id = getattr(raw, "call_id", None) or (raw.get("call_id") if isinstance(raw, dict)
                                                    else None)
        verdict = guard.decision_for(call_id) if call_id else None
        out.append((item, verdict.approval_id if verdict is not None else None))
    return out
