"""Provenance detector: where did the sensitive values of an effectful call come from?

Rule (positive provenance). For a tool whose effect is `write` or `egress`, every *sensitive
value* must be traceable to the objective, the grant's scope or trusted data:

- sensitive values are the values of sensitive arguments (`ToolSpec.sensitive_args`, or names
  recognised as destinations, identities, locations or credentials: recipient, IBAN/account,
  URL, e-mail, path, command, password, ...) and every URL, e-mail address or IBAN written
  inside any string argument (a link in a message body is a destination too), at any depth of
  a structured argument and in its keys, found in the NFKC form of the text; the host of a
  "scheme://" URL is traced as an HTTP client parses it (`urlsplit`, IDNA/NFKC-normalised), and
  a URL with userinfo ("https://corp.example.com;@evil.ru/") must be traced as a whole, to
  the objective or trusted data (a structured field or a designated source does not vouch
  for it);
- a value found only in a *structured field* of untrusted output (a sender IBAN of a
  transaction record, a channel name in a list) is weak evidence (`untrusted_structured_value`,
  weight 0 by default): the system that produced the record asserts it;
- a value found only in untrusted *free text* is strong evidence (`untrusted_value`), unless
  that text is the output of a read the user pointed at (`designated`: a read whose locating
  argument, e.g. the file name or URL, traces to the objective or trusted data; locating
  arguments are the read's `sensitive_args` and the names `is_sensitive_name` recognises, never
  a method, a format or a flag that happens to match a word of the objective). Then it is
  medium evidence (`designated_source_value`), because users do send agents to a bill to pay it
  or a contact page to find an address. A designated source never supplies an egress URL: a
  link found in content stays `untrusted_value`;
- a value found nowhere is strong evidence (`unknown_value`): this is what defeats an attacker
  who spells a value out so no substring matches it.

Only the strongest finding of a call becomes its signal; the evidence lists all findings.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any, Iterator, Mapping, NamedTuple

from ..model import DriftSignal, Grant, ToolCall
from .detector import DriftConfig, signal, spec_attr, tool_effect
from .state import GrantSession, Origin, Source, Trace
from .values import (
    embedded_tokens,
    flatten_output,
    host_forms,
    is_sensitive_name,
    url_hosts,
    value_kind,
)

__all__ = ["ProvenanceDetector"]

_CODE_BY_ORIGIN = {
    Origin.UNTRUSTED_STRUCTURED: "untrusted_structured_value",
    Origin.DESIGNATED: "designated_source_value",
    Origin.UNTRUSTED: "untrusted_value",
    Origin.UNKNOWN: "unknown_value",
}
_RANK = {o: i for i, o in enumerate(Origin)}  # most favourable first
_SECRET_HINTS = ("password", "passphrase", "secret", "token", "apikey", "api_key", "key")


def _arg_names(spec_names: Any) -> set[str]:
    out: set[str] = set()
    for n in spec_names or ():
        n = str(n)
        out.add(n.lstrip("/").split("/")[0] if n.startswith("/") else n)
    return out


_MAX_DEPTH = 12  # as deep as `values.flatten_output` walks a tool output
_MAX_LEAVES = 5000


def _leaves(value: Any, depth: int = 0, budget: list[int] | None = None
            ) -> Iterator[tuple[str, Any]]:
    """("str", s) for every string, ("key", k) for every string key of a mapping and
    ("num", n) for every number (bools excluded) inside an argument value."""
    if budget is None:
        budget = [_MAX_LEAVES]
    if depth > _MAX_DEPTH or budget[0] <= 0:
        return
    if isinstance(value, str):
        budget[0] -= 1
        yield "str", value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str):
                budget[0] -= 1
                yield "key", k
            yield from _leaves(v, depth + 1, budget)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v, depth + 1, budget)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        budget[0] -= 1
        yield "num", value


def _hide_userinfo(url: str) -> str:
    """The URL as shown in evidence: its userinfo (it may hold a password) replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    return url if at < 0 else f"{scheme}://***{rest[at:]}"


class _Candidate(NamedTuple):
    arg: str
    kind: str
    value: str
    alts: tuple[str, ...] = ()  # other spellings of the same value: traced if any of them is
    note: dict[str, Any] | None = None  # added to the finding
    strict: bool = False  # only the user's words or trusted data vouch for it (userinfo URLs)


class ProvenanceDetector:
    name = "provenance"

    def __init__(self, *, min_len: int = 2) -> None:
        self.min_len = min_len

    # -- the call ----------------------------------------------------------------------------
    def _candidates(self, call: ToolCall, tool_spec: Any) -> Iterator[_Candidate]:
        """Every sensitive value of the call."""
        declared = _arg_names(spec_attr(tool_spec, "sensitive_args", ()))
        for arg, value in (call.arguments or {}).items():
            sensitive = arg in declared or is_sensitive_name(arg)
            for leaf, item in _leaves(value):
                if leaf == "num":
                    if sensitive:
                        yield _Candidate(arg, "number", str(item))
                    continue
                s = item.strip()
                if len(s) < self.min_len:
                    continue
                n = s if s.isascii() else unicodedata.normalize("NFKC", s)
                kind = value_kind(n)
                if (sensitive and leaf == "str") or kind in ("url", "email", "iban"):
                    yield _Candidate(arg, kind, s)
                if kind == "text":
                    for tok_kind, tok in embedded_tokens(n):
                        if tok != n:
                            yield _Candidate(arg, tok_kind, tok)
                if "://" in n:
                    yield from self._url_candidates(arg, n)

    @staticmethod
    def _url_candidates(arg: str, text: str) -> Iterator[_Candidate]:
        """The host an HTTP client would reach for each scheme URL of `text`. With userinfo the
        host in plain sight is not the destination: the URL must then be traced as a whole."""
        for url, host, userinfo in url_hosts(text):
            if host:
                forms = host_forms(host)
                note = {"host_of": _hide_userinfo(url)[:200]}
                yield _Candidate(arg, "url", forms[0], (*forms[1:], url), note, userinfo)
            if userinfo:
                yield _Candidate(arg, "url", url, (), {"userinfo": True}, True)

    def _trace(self, state: GrantSession, cand: _Candidate) -> Trace:
        trace = state.trace(cand.value)
        for alt in cand.alts:
            if trace.origin is Origin.OBJECTIVE:
                break
            t = state.trace(alt)
            if _RANK[t.origin] < _RANK[trace.origin]:
                trace = t
        if cand.strict and trace.origin in (Origin.UNTRUSTED_STRUCTURED, Origin.DESIGNATED):
            trace = Trace(Origin.UNTRUSTED, trace.source)
        return trace

    async def assess(self, state: GrantSession, call: ToolCall, grant: Grant | None,
                     tool_spec: Any, policy: Any) -> list[DriftSignal]:
        if grant is None or tool_effect(tool_spec, call) == "read":
            return []
        cfg = DriftConfig.of(policy)
        redact = _arg_names(spec_attr(tool_spec, "redact_args", ()))
        findings: list[dict[str, Any]] = []
        worst: tuple[float, str] = (0.0, "")
        seen: set[tuple[str, str]] = set()
        for cand in self._candidates(call, tool_spec):
            arg, kind, value = cand.arg, cand.kind, cand.value
            if (arg, value) in seen:
                continue
            seen.add((arg, value))
            trace = self._trace(state, cand)
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
                finding["value"] = (_hide_userinfo(value) if kind == "url" else value)[:200]
            if cand.note and not secret:
                finding.update(cand.note)
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
        designated = not trusted and self._designated(state, call, tool_spec)
        state.add_fields(flatten_output(output), trusted=trusted,
                         source=Source(call.tool, call.call_id, designated))

    @staticmethod
    def _designated(state: GrantSession, call: ToolCall, tool_spec: Any) -> bool:
        """The user pointed at this read: a *locating* argument (the read's sensitive_args, or
        a name such as url, path, file) traces to the objective or trusted data."""
        locating = _arg_names(spec_attr(tool_spec, "sensitive_args", ()))
        for arg, value in (call.arguments or {}).items():
            if arg not in locating and not is_sensitive_name(arg):
                continue
            for leaf, s in _leaves(value):
                if leaf == "str" and len(s.strip()) >= 3 and state.trace(s).origin in (
                        Origin.OBJECTIVE, Origin.TRUSTED):
                    return True
        return False
