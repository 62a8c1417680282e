"""The tool-calling loop of the OpenAI SDK, with every tool call authorized by JITGate first.

Both APIs are covered: `chat.completions` (`run_chat`) and `responses` (`run_responses`). Each
turn's tool calls run concurrently (parallel tool calls); each goes through `ToolGate.run`, so
the local function runs only when allowed, its output is reported back, and a refusal reaches
the model as that tool's output (code and decision id), never as an exception.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from adapters.client.gate import GateOutcome, ToolGate

from .tools import ToolBox

__all__ = ["ToolCallRecord", "RunResult", "run_chat", "run_responses", "execute_tool_call"]


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    call_id: str
    name: str  # model-facing name
    tool: str  # gateway tool name
    arguments: Mapping[str, Any]
    text: str  # what the model read
    ran: bool
    effect: str  # allow | deny | review | throttle | error
    code: str
    decision_id: str | None


@dataclass
class RunResult:
    final_text: str
    turns: int
    calls: list[ToolCallRecord] = field(default_factory=list)
    transcript: list[Any] = field(default_factory=list)  # messages (chat) or input items


def _refused(call_id: str, name: str, tool: str, args: Mapping[str, Any], code: str,
             text: str) -> ToolCallRecord:
    return ToolCallRecord(call_id=call_id, name=name, tool=tool, arguments=args, text=text,
                          ran=False, effect="error", code=code, decision_id=None)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


async def execute_tool_call(gate: ToolGate, tools: ToolBox, call_id: str, name: str,
                            raw_arguments: str | None) -> ToolCallRecord:
    """One model tool call: parse, authorize, run if allowed; never raises for a refusal."""
    tool = tools.get(name)
    if tool is None:
        return _refused(call_id, name, name, {}, "unknown_tool",
                        f"JITGate refused this call; it did not run (code=unknown_tool). "
                        f"No tool named {name!r} is offered.")
    try:  # NaN and Infinity are not JSON: the gateway could not be asked about them
        args = json.loads(raw_arguments or "{}", parse_constant=_not_json)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        return _refused(call_id, name, tool.authorized_as, {}, "invalid_arguments",
                        "JITGate refused this call; it did not run (code=invalid_arguments). "
                        "The arguments are not a JSON object.")
    outcome: GateOutcome = await gate.run(tool.authorized_as, args, tool.fn, call_id=call_id)
    result = outcome.result
    return ToolCallRecord(
        call_id=call_id, name=name, tool=tool.authorized_as, arguments=args, text=outcome.text,
        ran=outcome.ran, effect=result.effect if result else "error",
        code=result.code if result else outcome.error_code or "gateway_unreachable",
        decision_id=result.decision_id if result else None)


def _dump(item: Any) -> Any:
    dump = getattr(item, "model_dump", None)
    return dump(exclude_none=True) if dump is not None else item


async def run_chat(client: Any, model: str, messages: Sequence[Mapping[str, Any]],
                   tools: ToolBox, gate: ToolGate, *, max_turns: int = 10,
                   **create_kwargs: Any) -> RunResult:
    """Drive `client.chat.completions.create` until the model answers without tool calls."""
    transcript: list[Any] = [dict(m) for m in messages]
    run = RunResult(final_text="", turns=0, transcript=transcript)
    specs = tools.chat_specs()
    for _ in range(max_turns):
        run.turns += 1
        kwargs = dict(create_kwargs)
        if specs:
            kwargs["tools"] = specs
        completion = await client.chat.completions.create(model=model, messages=transcript,
                                                          **kwargs)
        message = completion.choices[0].message
        tool_calls = list(message.tool_calls or [])
        if not tool_calls:
            run.final_text = message.content or ""
            transcript.append({"role": "assistant", "content": run.final_text})
            return run
        transcript.append(_dump(message))
        records = await asyncio.gather(*(
            execute_tool_call(gate, tools, tc.id, tc.function.name, tc.function.arguments)
            for tc in tool_calls))
        for rec in records:
            run.calls.append(rec)
            transcript.append({"role": "tool", "tool_call_id": rec.call_id, "content": rec.text})
    return run


async def run_responses(client: Any, model: str, input: str | Sequence[Mapping[str, Any]],
                        tools: ToolBox, gate: ToolGate, *, max_turns: int = 10,
                        **create_kwargs: Any) -> RunResult:
    """Drive `client.responses.create` until the model answers without function calls."""
    items: list[Any] = ([{"role": "user", "content": input}] if isinstance(input, str)
                        else [dict(i) for i in input])
    run = RunResult(final_text="", turns=0, transcript=items)
    specs = tools.responses_specs()
    for _ in range(max_turns):
        run.turns += 1
        kwargs = dict(create_kwargs)
        if specs:
            kwargs["tools"] = specs
        response = await client.responses.create(model=model, input=items, **kwargs)
        fcalls = [o for o in response.output if getattr(o, "type", None) == "function_call"]
        if not fcalls:
            run.final_text = response.output_text or ""
            return run
        items.extend(_dump(o) for o in response.output)
        records = await asyncio.gather(*(
            execute_tool_call(gate, tools, fc.call_id, fc.name, fc.arguments) for fc in fcalls))
        for rec in records:
            run.calls.append(rec)
            items.append({"type": "function_call_output", "call_id": rec.call_id,
                          "output": rec.text})
    return run
