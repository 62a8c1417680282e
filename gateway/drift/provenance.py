"""Provenance detector: where did the sensitive values of an effectful call come from?

Rule (positive provenance). For a tool whose effect is `write` or `egress`, every *sensitive
value* must be traceable to the objective, the grant's scope or trusted data:

- sensitive values are the values of sensitive arguments (`ToolSpec.sensitive_args`, or names
  recognised as destinations, identities, locations or credentials: recipient, IBAN/account,
  URL, e-mail, path, command, password, ...) and every URL, e-mail address or IBAN written
  inside any string argument (a link in a message body is a destination too);
- a value found only in a *structured field* of untrusted output (a sender IBAN of a
  transaction record, a channel name in a list) is weak evidence (`untrusted_structured_value`,
  weight 0 by default): the system that produced the record asserts it;
- a value found only in untrusted *free text* is strong evidence (`untrusted_value`), unless
  that text is the output of a read the user pointed at (`designated`: a read whose locating
  argument, e.g. the file name or URL, traces to the objective or trusted data). Then it is
  medium evidence (`designated_source_value`), because users do send agents to a bill to pay it
  or a contact page to find an address. A designated source never supplies an egress URL: a
  link found in content stays `untrusted_value`;
- a value found nowhere is strong evidence (`unknown_value`): this is what defeats an attacker
  who spells a value out so no substring matches it.

Only the strongest finding of a call becomes its signal; the evidence lists all findings.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator, Mapping

from ..model import DriftSignal, Grant, ToolCall
from .detector import DriftConfig, signal, spec_attr, tool_effect
from .state import GrantSession, Origin, Source
from .values import embedded_tokens, flatten_output, is_sensitive_name, value_kind

__all__ = ["ProvenanceDetector"]

_CODE_BY_ORIGIN = {
    Origin.UNTRUSTED_STRUCTURED: "untrusted_structured_value",
    Origin.DESIGNATED: "designated_source_value",
    Origin.UNTRUSTED: "untrusted_value",
    Origin.UNKNOWN: "unknown_value",
}
_SECRET_HINTS = ("password", "passphrase", "secret", "token", "apikey", "api_key", "key")


def _arg_names(spec_names: Any) -> set[str]:
    out: set[str] = set()
    for n in spec_names or ():
        n = str(n)
        out.add(n.lstrip("/").split("/")[0] if n.startswith("/") else n)
    return out


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if depth > 4:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v, depth + 1)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v, depth + 1)


class ProvenanceDetector:
    name = "provenance"

    def __init__(self, *, min_len: int = 2) -> None:
        self.min_len = min_len

    # -- the call ----------------------------------------------------------------------------
    def _candidates(self, call: ToolCall, tool_spec: Any) -> Iterator[tuple[str, str, str]]:
        """(argument, kind, value) for every sensitive value of the call."""
        declared = _arg_names(spec_attr(tool_spec, "sensitive_args", ()))
        egress = tool_effect(tool_spec, call) == "egress"
        for arg, value in (call.arguments or {}).items():
            sensitive = arg in declared or is_sensitive_name(arg)
            for s in _strings(value):
                s = s.strip()
                if len(s) < self.min_len:
                    continue
                kind = value_kind(s)
                if sensitive or (egress and kind == "url") or kind in ("url", "email", "iban"):
                    yield arg, kind, s
                if kind == "text":
                    for tok_kind, tok in embedded_tokens(s):
                        if tok != s:
                            yield arg, tok_kind, tok
            if sensitive and isinstance(value, (int, float)) and not isinstance(value, bool):
                yield arg, "number", str(value)

    async def assess(self, state: GrantSession, call: ToolCall, grant: Grant | None,
                     tool_spec: Any, policy: Any) -> list[DriftSignal]:
        if grant is None or tool_effect(tool_spec, call) == "read":
            return []
        cfg = DriftConfig.of(policy)
        redact = _arg_names(spec_attr(tool_spec, "redact_args", ()))
        findings: list[dict[str, Any]] = []
        worst: tuple[float, str] = (0.0, "")
        seen: set[tuple[str, str]] = set()
        for arg, kind, value in self._candidates(call, tool_spec):
            if (arg, value) in seen:
                continue
            seen.add((arg, value))
            trace = state.trace(value)
            code = _CODE_BY_ORIGIN.get(trace.origin)
            if code is None:
                continue
            if code == "designated_source_value" and kind == "url":
                code = "untrusted_value"
            w = cfg.weight(self.name, code)
            secret = arg in redact or any(h in arg.lower() for h in _SECRET_HINTS)
            finding: dict[str, Any] = {"argument": arg, "kind": kind, "origin": trace.origin.value,
                                       "code": code}
            if secret:
                finding["value_sha256"] = hashlib.sha256(value.encode()).hexdigest()[:16]
            else:
                finding["value"] = value[:200]
            if trace.source is not None:
                finding["source_tool"] = trace.source.tool
                finding["source_call"] = trace.source.call_id
            findings.append(finding)
            if w > worst[0]:
                worst = (w, code)
        if not findings or worst[0] <= 0:
            return []
        s = signal(cfg, self.name, worst[1], tool=call.tool, findings=findings)
        return [s] if s else []

    # -- the output --------------------------------------------------------------------------
    def observe(self, state: GrantSession, call: ToolCall, tool_spec: Any, output: Any,
                trusted: bool | None = None) -> None:
        if trusted is None:
            trusted = not bool(spec_attr(tool_spec, "untrusted_output", False))
        designated = False
        if not trusted:
            for s in _strings(dict(call.arguments or {})):
                if len(s.strip()) >= 3 and state.trace(s).origin in (Origin.OBJECTIVE,
                                                                       Origin.TRUSTED):
                    designated = True
                    break
        state.add_fields(flatten_output(output), trusted=trusted,
                         source=Source(call.tool, call.call_id, designated))
