"""Drift detection: weighted, explained signals per grant, revocation at the policy threshold."""

from .detector import DEFAULT_THRESHOLD, DEFAULT_WEIGHTS, Detector, DriftConfig
from .judge import Judge, JudgeDetector, JudgeVerdict
from .monitor import DriftMonitor, build_monitor, default_detectors
from .provenance import ProvenanceDetector
from .retry import RetryDetector
from .scope import ScopeDetector
from .semantic import Embedder, SemanticDetector
from .state import GrantSession, Origin

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_WEIGHTS",
    "Detector",
    "DriftConfig",
    "DriftMonitor",
    "default_detectors",
    "build_monitor",
    "Embedder",
    "GrantSession",
    "Judge",
    "JudgeDetector",
    "JudgeVerdict",
    "Origin",
    "ProvenanceDetector",
    "RetryDetector",
    "ScopeDetector",
    "SemanticDetector",
]
