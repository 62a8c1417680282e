"""Rate limits and retry pressure: the port, its verdict, and the pure retry-backoff policy.

Windows are counted by an adapter (`adapters.ratelimit`, on the `limits` library: in process or
Redis). The retry backoff is pure arithmetic over a denial history and a clock, so it lives here:
retrying a call that was just denied (same tool, same or near-same arguments) is throttled with
an exponentially growing `retry_after` (code `retry_backoff`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from .digest import args_digest
from .model import ToolCall

__all__ = [
    "RateVerdict",
    "RateLimiter",
    "RateLimitRule",
    "RetryBackoff",
    "DenialHistory",
    "near_args_digest",
    "retry_key",
    "rate_limit_rules",
    "OK",
]


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """`retry_after` None means "go on"; else the call is throttled with `code`."""

    retry_after: float | None
    code: str  # "rate_limited" | "retry_backoff" | ""
    limit_id: str

    @property
    def throttled(self) -> bool:
        return self.retry_after is not None


OK = RateVerdict(None, "", "")


class RateLimiter(Protocol):
    async def check(self, call: ToolCall, grant_id: str | None, policy: Any) -> RateVerdict:
        """Count this call against every matching limit; a throttle verdict if one is exceeded."""
        ...

    async def record_denial(self, call: ToolCall, args_digest: str | None = None) -> None:
        """A call was denied: its near-same retries now back off."""
        ...

    async def record_allow(self, call: ToolCall, args_digest: str | None = None) -> None:
        """A call was allowed: its retry history is cleared."""
        ...


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """One window from policy: `limit` calls per `window_s` seconds, counted per `per`."""

    id: str
    per: tuple[str, ...]  # any of "agent", "grant", "tool"
    limit: int
    window_s: float
    tool: str | None = None  # exact name or fnmatch glob; None = every tool

    def applies(self, tool: str) -> bool:
        if self.tool is None or self.tool in ("", "*"):
            return True
        from fnmatch import fnmatchcase

        return fnmatchcase(tool, self.tool)

    def key(self, call: ToolCall, grant_id: str | None) -> str:
        parts = [self.id]
        for p in self.per:
            if p == "agent":
                parts.append("a=" + call.agent.id)
            elif p == "grant":
                parts.append("g=" + (grant_id or "-"))
            elif p == "tool":
                parts.append("t=" + call.tool)
        return "|".join(parts)


_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_LIMIT_RX = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$", re.I)


def _parse_limit(spec: Any) -> tuple[int, float]:
    """'10/minute', '100 per 5 minutes', or (count, seconds)."""
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return int(spec[0]), float(spec[1])
    if isinstance(spec, Mapping):
        return int(spec["count"]), float(spec.get("window_s", spec.get("seconds", 60)))
    m = _LIMIT_RX.match(str(spec))
    if not m:
        raise ValueError(f"unreadable rate limit {spec!r}")
    count, mult, unit = int(m.group(1)), int(m.group(2) or 1), m.group(3).lower()
    return count, mult * _UNITS[unit]


def rate_limit_rules(policy: Any) -> list[RateLimitRule]:
    """Normalise `policy.rate_limits` (RateLimitSpec id/per/tool/limit, or dicts) into rules."""
    out: list[RateLimitRule] = []
    for i, spec in enumerate(getattr(policy, "rate_limits", None) or ()):
        get = spec.get if isinstance(spec, Mapping) else (lambda k, d=None, s=spec: getattr(s, k, d))
        per = get("per", "agent")
        per_t = tuple(p.strip() for p in per.split("+")) if isinstance(per, str) else tuple(per)
        count, window = _parse_limit(get("limit"))
        if get("window_s", None) is not None:
            window = float(get("window_s"))
        out.append(RateLimitRule(id=str(get("id", None) or f"rate_limit_{i}"), per=per_t,
                                 limit=count, window_s=window, tool=get("tool", None)))
    return out


def _near(value: Any) -> Any:
    """Forget what does not change a call's meaning: case, spacing, float noise, key order."""
    if isinstance(value, str):
        s = unicodedata.normalize("NFKC", value).casefold()
        return " ".join(s.split())
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 2) if math.isfinite(float(value)) else str(value)
    if type(value) is dict or isinstance(value, Mapping):
        return {str(k): _near(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_near(v) for v in value]
    return str(value)


def near_args_digest(arguments: Mapping[str, Any] | None) -> str:
    """The digest under which near-same retries of a call collide."""
    return args_digest(_near(dict(arguments or {})))


def retry_key(call: ToolCall, near_digest: str | None = None) -> str:
    digest = near_digest or near_args_digest(call.arguments)
    return f"{call.agent.id}|{call.grant_id or '-'}|{call.tool}|{digest}"


@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """retry_after = base_s * factor ** (denials - 1), capped; denials older than window_s lapse.

    A retry is throttled while `now < last_denial + retry_after(denials)`.
    """

    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 300.0
    window_s: float = 600.0

    def delay(self, denials: int) -> float:
        if denials <= 0:
            return 0.0
        return min(self.max_s, self.base_s * self.factor ** (denials - 1))

    def live(self, denial_times: Sequence[float], now: float) -> list[float]:
        return [t for t in denial_times if now - t < self.window_s]

    def retry_after(self, denial_times: Sequence[float], now: float) -> float | None:
        """Seconds the caller must still wait, or None when a retry may go through."""
        live = self.live(denial_times, now)
        if not live:
            return None
        wait = max(live) + self.delay(len(live)) - now
        return wait if wait > 0 else None

    @classmethod
    def from_policy(cls, policy: Any) -> "RetryBackoff":
        drift = getattr(policy, "drift", None)
        extra = getattr(drift, "extra", None) or {}
        cfg = extra.get("retry_backoff", {}) if isinstance(extra, Mapping) else {}
        return cls(**{k: float(v) for k, v in cfg.items() if k in ("base_s", "factor", "max_s", "window_s")})


@dataclass(slots=True)
class DenialHistory:
    """In-process denial times per retry key, bounded (oldest keys evicted first)."""

    max_keys: int = 100_000
    _times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, now: float, window_s: float) -> int:
        times = [t for t in self._times.pop(key, []) if now - t < window_s]
        times.append(now)
        self._times[key] = times[-64:]
        while len(self._times) > self.max_keys:
            self._times.pop(next(iter(self._times)))
        return len(times)

    def get(self, key: str) -> list[float]:
        return self._times.get(key, [])

    def clear(self, key: str) -> None:
        self._times.pop(key, None)
