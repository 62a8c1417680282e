"""What the drift detectors remember about one grant: roots, provenance, history, signals.

Provenance is *positive*: a value is accounted for when it can be traced to the objective, the
grant's scope or trusted data. Untrusted values are kept with their source and field kind so a
detector can tell "the user asked for it" from "a web page said so".
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..model import DriftSignal, Grant
from .values import Field, contains_value, norm, norm_value

__all__ = ["Origin", "Source", "Trace", "CallRecord", "GrantSession", "scope_values"]


class Origin(str, enum.Enum):
    OBJECTIVE = "objective"  # the user's words (objective) or the grant's scope
    TRUSTED = "trusted"  # output of a tool whose output policy trusts
    UNTRUSTED_STRUCTURED = "untrusted_structured"  # a structured field of untrusted output
    DESIGNATED = "designated"  # free text of an untrusted resource the user pointed at
    UNTRUSTED = "untrusted"  # free text of untrusted output
    UNKNOWN = "unknown"  # seen nowhere: invented, or spelled out to evade matching


@dataclass(frozen=True, slots=True)
class Source:
    tool: str
    call_id: str | None
    designated: bool = False


@dataclass(frozen=True, slots=True)
class Trace:
    origin: Origin
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    t: float
    tool: str
    near_digest: str
    denied: bool
    code: str


def _collect_strings(obj: Any, out: list[str], depth: int = 0) -> None:
    if depth > 6:
        return
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, Mapping):
        for v in obj.values():
            _collect_strings(v, out, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _collect_strings(v, out, depth + 1)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out.append(str(obj))


def scope_values(grant: Grant) -> list[str]:
    """Every literal the grant's scope names (tool argument constraints): trusted roots."""
    out: list[str] = []
    for item in grant.scope:
        for constraint in item.args.values():
            _collect_strings(constraint, out)
    return out


@dataclass(slots=True)
class GrantSession:
    grant_id: str
    agent_id: str
    objective: str = ""
    roots: list[str] = field(default_factory=list)  # normalised objective + scope literals
    trusted_exact: set[str] = field(default_factory=set)
    trusted_texts: list[str] = field(default_factory=list)
    untrusted_exact: dict[str, Source] = field(default_factory=dict)
    untrusted_texts: list[tuple[str, Source]] = field(default_factory=list)
    history: deque[CallRecord] = field(default_factory=lambda: deque(maxlen=256))
    signals: list[tuple[float, DriftSignal]] = field(default_factory=list)
    renewals: int = 0
    revoked: bool = False
    cache: dict[str, Any] = field(default_factory=dict)  # per-detector scratch (compiled scope...)
    # near digest -> how many records of `history` carry it; valid while `history` ends with
    # `_indexed_last` and holds `_indexed_len` records (else rebuilt on the next lookup)
    _near_counts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _indexed_len: int = field(default=0, repr=False, compare=False)
    _indexed_last: CallRecord | None = field(default=None, repr=False, compare=False)

    @classmethod
    def for_grant(cls, grant: Grant) -> "GrantSession":
        s = cls(grant.grant_id, grant.agent_id, grant.objective)
        s.roots.append(norm(grant.objective))
        s.roots.extend(norm_value(v) for v in scope_values(grant) if v.strip())
        return s

    # -- call history ------------------------------------------------------------------------
    def add_call(self, rec: CallRecord) -> None:
        """Append to `history` (the oldest record drops out past maxlen), index kept current."""
        h = self.history
        if not self._indexed():
            h.append(rec)
            self._reindex()
            return
        counts = self._near_counts
        if h.maxlen is not None and len(h) >= h.maxlen and h:
            old = h[0].near_digest
            n = counts[old] - 1
            if n:
                counts[old] = n
            else:
                del counts[old]
        h.append(rec)
        counts[rec.near_digest] = counts.get(rec.near_digest, 0) + 1
        self._indexed_len = len(h)
        self._indexed_last = rec

    def may_repeat(self, near_digest: str) -> bool:
        """False when no record of `history` has this near digest (O(1))."""
        if not self._indexed():
            self._reindex()
        return near_digest in self._near_counts

    def _indexed(self) -> bool:
        h = self.history
        return self._indexed_len == len(h) and (h[-1] if h else None) is self._indexed_last

    def _reindex(self) -> None:
        counts: dict[str, int] = {}
        for rec in self.history:
            counts[rec.near_digest] = counts.get(rec.near_digest, 0) + 1
        self._near_counts = counts
        self._indexed_len = len(self.history)
        self._indexed_last = self.history[-1] if self.history else None

    # -- provenance ingest -------------------------------------------------------------------
    def add_fields(self, fields: Iterable[Field], *, trusted: bool, source: Source) -> None:
        for f in fields:
            if trusted:
                (self.trusted_texts.append(f.value) if f.free_text
                 else self.trusted_exact.add(f.value))
            elif f.free_text:
                self.untrusted_texts.append((f.value, source))
            else:
                prev = self.untrusted_exact.get(f.value)
                if prev is None or (source.designated and not prev.designated):
                    self.untrusted_exact[f.value] = source
        # bound memory: a long session keeps its most recent texts
        if len(self.trusted_texts) > 2000:
            del self.trusted_texts[:-2000]
        if len(self.untrusted_texts) > 2000:
            del self.untrusted_texts[:-2000]

    # -- provenance lookup -------------------------------------------------------------------
    def trace(self, value: str) -> Trace:
        """Where `value` could have come from, the most favourable origin first."""
        v = norm_value(value)
        if not v:
            return Trace(Origin.OBJECTIVE)
        for root in self.roots:
            if root == v or contains_value(root, v):
                return Trace(Origin.OBJECTIVE)
        if v in self.trusted_exact:
            return Trace(Origin.TRUSTED)
        for text in self.trusted_texts:
            if contains_value(text, v):
                return Trace(Origin.TRUSTED)
        src = self.untrusted_exact.get(v)
        if src is not None:
            return Trace(Origin.UNTRUSTED_STRUCTURED, src)
        best: Source | None = None
        for text, source in self.untrusted_texts:
            if contains_value(text, v):
                if source.designated:
                    return Trace(Origin.DESIGNATED, source)
                best = best or source
        if best is not None:
            return Trace(Origin.UNTRUSTED, best)
        return Trace(Origin.UNKNOWN)

    # -- score -------------------------------------------------------------------------------
    def add_signals(self, now: float, signals: Iterable[DriftSignal]) -> None:
        self.signals.extend((now, s) for s in signals)
        if len(self.signals) > 1000:
            del self.signals[:-1000]

    def score(self, now: float, window_s: float | None) -> float:
        if window_s is None or window_s <= 0:
            return sum(s.weight for _, s in self.signals)
        return sum(s.weight for t, s in self.signals if now - t < window_s)
