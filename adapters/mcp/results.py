"""Results we hand to the downstream client: rebuilt from upstream ones, or refusals.

Upstream results are rebuilt field by field so nothing the upstream put in `_meta` (its
server info, vendor data) reaches our client. A policy outcome is a tool result with
`is_error=True` the model can read, never a protocol error.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import mcp.types as t
from mcp.shared.exceptions import MCPError

from gateway.model import Decision, Effect

__all__ = [
    "rebuild_call_result",
    "rebuild_content",
    "strip_meta",
    "refusal",
    "decision_refusal",
    "refusal_text",
    "outcome_output",
    "public_error",
]

_MAX_OUTPUT_CHARS = 64_000


def strip_meta(model: Any) -> Any:
    """A copy of a pydantic MCP model (and its nested models) with every `_meta` dropped."""
    if isinstance(model, list):
        return [strip_meta(m) for m in model]
    if not hasattr(type(model), "model_fields"):
        return model
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name == "meta":
            if value is not None:
                updates[name] = None
        elif hasattr(type(value), "model_fields") or isinstance(value, list):
            new = strip_meta(value)
            if new is not value:
                updates[name] = new
    return model.model_copy(update=updates) if updates else model


def rebuild_content(blocks: list[t.ContentBlock]) -> list[t.ContentBlock]:
    return [strip_meta(b) for b in blocks]


def rebuild_call_result(res: t.CallToolResult) -> t.CallToolResult:
    return t.CallToolResult(
        content=rebuild_content(list(res.content)),
        structured_content=res.structured_content,
        is_error=bool(res.is_error),
    )


def refusal(code: str, message: str, *, decision_id: str | None = None,
            retry_after: float | None = None, extra: Mapping[str, Any] | None = None
            ) -> t.CallToolResult:
    structured: dict[str, Any] = {"code": code, "decision_id": decision_id}
    if retry_after is not None:
        structured["retry_after"] = retry_after
    if extra:
        structured.update(extra)
    return t.CallToolResult(
        content=[t.TextContent(type="text", text=message)],
        structured_content=structured,
        is_error=True,
    )


def refusal_text(decision: Decision) -> str:
    reasons = "; ".join(decision.reasons) if decision.reasons else decision.code
    head = f"JITGate refused the call to {decision.tool} ({decision.code}): {reasons}."
    if decision.effect is Effect.REVIEW:
        where = (f"/ui or POST /v1/approvals/{decision.approval_id}/approve"
                 if decision.approval_id else "/ui")
        return (f"JITGate needs a human to approve this exact call to {decision.tool} "
                f"({decision.code}): {reasons}. Approval was requested"
                + (f" (approval id {decision.approval_id})" if decision.approval_id else "")
                + f"; a reviewer can approve it at {where}. Once approved, retry the same call "
                "with the same arguments. Do not try other tools to get around it.")
    if decision.effect is Effect.THROTTLE:
        when = (f"in {decision.retry_after:g} seconds" if decision.retry_after is not None
                else "later")
        return f"{head} You may retry the same call {when}."
    hint = {
        "no_grant": "Ask for access first with jitgate_request_grant (objective, scope, ttl_s).",
        "not_in_baseline": "Ask for access first with jitgate_request_grant.",
        "tool_not_in_scope": "This tool is not in your grant; request a grant that covers it "
                             "with jitgate_request_grant if your task needs it.",
        "argument_out_of_scope": "Stay within the arguments your grant allows, or request a "
                                 "grant that covers this with jitgate_request_grant.",
        "grant_pending": "Wait until a reviewer approves your grant "
                         "(check with jitgate_grant_status), then retry.",
        "grant_expired": "Request a new grant with jitgate_request_grant if the task goes on.",
        "grant_exhausted": "Request a new grant with jitgate_request_grant if the task goes on.",
    }.get(decision.code, "Do not retry this call unchanged.")
    return f"{head} {hint}"


def decision_refusal(decision: Decision) -> t.CallToolResult:
    return refusal(decision.code, refusal_text(decision), decision_id=decision.decision_id,
                   retry_after=decision.retry_after,
                   extra={"effect": decision.effect.value,
                          **({"approval_id": decision.approval_id}
                             if decision.approval_id else {})})


def outcome_output(res: t.CallToolResult) -> Any:
    """What the drift detectors and the audit trail see of a tool's output (text, bounded)."""
    if res.structured_content is not None:
        try:
            text = json.dumps(res.structured_content, default=str)
        except (TypeError, ValueError):
            text = str(res.structured_content)
    else:
        parts = []
        for block in res.content:
            if isinstance(block, t.TextContent):
                parts.append(block.text)
            else:
                parts.append(f"[{getattr(block, 'type', 'content')}]")
        text = "\n".join(parts)
    return text[:_MAX_OUTPUT_CHARS]


def public_error(exc: MCPError, what: str) -> MCPError:
    """An upstream's error as our client gets it: the upstream's code with a fixed message and
    no data (its message and data can hold internals: paths, DSNs, stack traces)."""
    return MCPError(exc.code, f"the upstream server could not {what} (error {exc.code})")
