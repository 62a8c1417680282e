"""The detector contract and how weights and thresholds are read from policy.

Weights come from `policy.drift.weights`, looked up as "detector.code", then "code", then
"detector"; a detector's built-in default applies otherwise. A weight of 0 silences a signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

from policies.engine import DriftSettings

from ..model import DriftSignal, Grant, ToolCall
from .state import GrantSession

__all__ = [
    "Detector",
    "DriftConfig",
    "DEFAULT_WEIGHTS",
    "DETECTOR_WEIGHTS",
    "CODE_FACTORS",
    "DEFAULT_THRESHOLD",
    "spec_attr",
    "tool_effect",
    "tool_tier",
    "signal",
]

DEFAULT_THRESHOLD = 1.0

# A signal's weight is the detector's weight (policy `drift.weights[detector]`, else the default
# below) times the code's factor; `drift.weights["detector.code"]` or `["code"]` overrides it.
# Calibrated so that one strong piece of evidence (a sensitive value only untrusted text
# supplied, or invented) revokes at once, while weaker evidence needs company.
DETECTOR_WEIGHTS: dict[str, float] = {
    "scope": 0.5,
    "retry": 0.25,
    "provenance": 1.0,
    "semantic": 0.5,
    "judge": 0.6,
}
CODE_FACTORS: dict[str, float] = {
    "scope.tool_not_in_scope": 1.0,
    "scope.argument_out_of_scope": 1.0,
    "retry.repeated_denial": 1.0,
    "retry.near_duplicate_burst": 0.8,
    "retry.repeated_renewal": 1.2,
    "provenance.untrusted_value": 1.0,
    "provenance.unknown_value": 1.0,
    "provenance.designated_source_value": 0.5,
    "provenance.untrusted_structured_value": 0.0,
    "semantic.semantic_mismatch": 1.0,
    "judge.judge_misaligned": 1.0,
    "judge.judge_unavailable": 0.33,
    "judge.detector_unavailable": 0.0,
}
DEFAULT_WEIGHTS: dict[str, float] = {
    k: round(DETECTOR_WEIGHTS[k.split(".")[0]] * f, 4) for k, f in CODE_FACTORS.items()
}


@runtime_checkable
class Detector(Protocol):
    name: str

    async def assess(self, state: GrantSession, call: ToolCall, grant: Grant | None,
                     tool_spec: Any, policy: Any) -> list[DriftSignal]:
        """Signals for this call (weights already resolved with `DriftConfig.weight`)."""
        ...


@dataclass(frozen=True, slots=True)
class DriftConfig:
    threshold: float
    weights: Mapping[str, float]
    window_s: float | None
    extra: Mapping[str, Any]

    @classmethod
    def of(cls, policy: Any) -> "DriftConfig":
        d = getattr(policy, "drift", None) if policy is not None else None
        if d is None:
            return cls(DEFAULT_THRESHOLD, {}, None, {})
        # A compiled policy's settings are frozen (a reload brings a new object): read once.
        cached = _last_config
        if cached is not None and cached[0] is d:
            return cached[1]
        cfg = cls._read(d)
        if isinstance(d, DriftSettings):
            _remember(d, cfg)
        return cfg

    @classmethod
    def _read(cls, d: Any) -> "DriftConfig":
        get = d.get if isinstance(d, Mapping) else (lambda k, default=None: getattr(d, k, default))
        threshold = get("threshold", None)
        return cls(
            float(threshold) if threshold is not None else DEFAULT_THRESHOLD,
            dict(get("weights", None) or {}),
            float(get("window_s")) if get("window_s", None) else None,
            dict(get("extra", None) or {}),
        )

    def weight(self, detector: str, code: str) -> float:
        for key in (f"{detector}.{code}", code):
            if key in self.weights:
                return float(self.weights[key])
        base = self.weights.get(detector, DETECTOR_WEIGHTS.get(detector, 0.5))
        return round(float(base) * CODE_FACTORS.get(f"{detector}.{code}", 1.0), 6)


_last_config: tuple[Any, DriftConfig] | None = None


def _remember(settings: Any, cfg: DriftConfig) -> None:
    global _last_config
    _last_config = (settings, cfg)  # holds `settings`, so its identity is never reused


def spec_attr(tool_spec: Any, name: str, default: Any = None) -> Any:
    if tool_spec is None:
        return default
    if isinstance(tool_spec, Mapping):
        return tool_spec.get(name, default)
    return getattr(tool_spec, name, default)


def tool_effect(tool_spec: Any, call: ToolCall) -> str:
    """read | write | egress. Unknown tools count as write (fail closed)."""
    effect = spec_attr(tool_spec, "effect", None)
    if effect:
        return str(getattr(effect, "value", effect))
    ann = call.annotations or {}
    if ann.get("read_only") or ann.get("readOnlyHint"):
        return "egress" if (ann.get("open_world") or ann.get("openWorldHint")) else "read"
    return "write"


def tool_tier(tool_spec: Any) -> str:
    tier = spec_attr(tool_spec, "tier", "")
    return str(getattr(tier, "name", getattr(tier, "value", tier)) or "")


def signal(cfg: DriftConfig, detector: str, code: str, **evidence: Any) -> DriftSignal | None:
    w = cfg.weight(detector, code)
    if w <= 0 and code != "detector_unavailable":
        return None
    return DriftSignal(detector=detector, weight=w, code=code, evidence=evidence)
