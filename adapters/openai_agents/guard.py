"""JITGate as the OpenAI Agents SDK's own hooks for function tools.

- a **tool input guardrail** authorizes each call before the tool runs; a refusal is
  `reject_content(...)`, so the model reads it as the tool's output and the run goes on;
- a **tool output guardrail** reports the output back for the audit trail and drift detectors;
- `needs_approval` surfaces a `review` decision through the SDK's approval mechanism:
  the run stops with `result.interruptions`; once a JITGate reviewer approved the exact call,
  `state.approve(item)` and `Runner.run(agent, state)` run it (the guardrail asks again and gets
  `allowed_by_approval`). Approving in the SDK alone never runs the tool.

    guard = AgentsGuard(ToolGate(client, grant_id))
    agent = Agent(..., tools=guard.protect([transfer, lookup]))
"""

from __future__ import annotations

import json
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

from adapters.client.gate import ToolGate
from adapters.client.result import AuthorizeResult, GatewayClientError

__all__ = ["AgentsGuard", "pending_reviews"]


def _parse(raw: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class AgentsGuard:
    """Guardrails and approval checks that send every function tool call through a ToolGate."""

    def __init__(self, gate: ToolGate, *, tool_names: Mapping[str, str] | None = None,
                 gateway_name: Callable[[str], str] | None = None) -> None:
        self.gate = gate
        self._names = dict(tool_names or {})
        self._name_fn = gateway_name
        self._open: dict[str, AuthorizeResult] = {}  # tool_call_id -> decision not yet run
        self._running: dict[str, AuthorizeResult] = {}  # tool_call_id -> allowed, running
        self.input_guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self._check_input, name="jitgate_authorize")
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(
            guardrail_function=self._report_output, name="jitgate_report")

    def gateway_tool(self, name: str) -> str:
        if name in self._names:
            return self._names[name]
        return self._name_fn(name) if self._name_fn is not None else name

    def decision_for(self, call_id: str) -> AuthorizeResult | None:
        return self._open.get(call_id)

    async def _authorize(self, name: str, args: Mapping[str, Any],
                         call_id: str) -> AuthorizeResult | GatewayClientError:
        verdict = await self.gate.check(self.gateway_tool(name), args, call_id)
        if isinstance(verdict, AuthorizeResult):
            self._open[call_id] = verdict
        return verdict

    async def _check_input(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        args = _parse(ctx.tool_arguments)
        if args is None:
            return ToolGuardrailFunctionOutput.reject_content(
                "JITGate refused this call; it did not run (code=invalid_arguments).")
        cached = self._open.pop(ctx.tool_call_id, None)
        verdict: AuthorizeResult | GatewayClientError
        if cached is not None and not cached.needs_review:
            verdict = cached  # decided by the approval check just before: one decision per call
        else:  # no decision yet, or a review the SDK's approval let through: ask again
            verdict = await self._authorize(ctx.tool_name, args, ctx.tool_call_id)
            self._open.pop(ctx.tool_call_id, None)
        if isinstance(verdict, GatewayClientError):
            return ToolGuardrailFunctionOutput.reject_content(
                f"JITGate refused this call; it did not run (code={verdict.code}).")
        if not verdict.allowed:
            self._open[ctx.tool_call_id] = verdict
            return ToolGuardrailFunctionOutput.reject_content(verdict.refusal_text(),
                                                              output_info=verdict.code)
        self._running[ctx.tool_call_id] = verdict
        return ToolGuardrailFunctionOutput.allow(output_info=verdict.decision_id)

    async def _report_output(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        verdict = self._running.pop(data.context.tool_call_id, None)
        if verdict is not None:
            await self.gate.report(verdict, True, data.output)
        return ToolGuardrailFunctionOutput.allow()

    def approval_check(self, tool_name: str) -> Callable[..., Any]:
        """A `needs_approval` callable for one tool: True when JITGate answers `review`."""

        async def needs_approval(_ctx: RunContextWrapper[Any], params: dict[str, Any],
                                 call_id: str) -> bool:
            verdict = await self._authorize(tool_name, params, call_id)
            return isinstance(verdict, AuthorizeResult) and verdict.needs_review

        return needs_approval

    def protect(self, tools: Iterable[FunctionTool], *, approvals: bool = True
                ) -> list[FunctionTool]:
        """Add the guardrails (and the approval check) to each function tool, in place."""
        out = []
        for tool in tools:
            tool.tool_input_guardrails = [*(tool.tool_input_guardrails or []),
                                          self.input_guardrail]
            tool.tool_output_guardrails = [*(tool.tool_output_guardrails or []),
                                           self.output_guardrail]
            if approvals:
                tool.needs_approval = self.approval_check(tool.name)
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
