"""A stuck embedding model must not stall the decision: the semantic detector times out and the
monitor records `detector_unavailable` (the call is denied, fail closed). Runs without the model:
the embedder is a fake that blocks until the test releases it."""

import asyncio
import threading

import pytest

from gateway.clock import FakeClock
from gateway.drift import DriftMonitor, ProvenanceDetector, SemanticDetector, build_monitor

from .fixtures import call, grant, policy, spec

SEND = spec("chat.send", sensitive=("recipient",))
GUARD_S = 10.0  # only reached when the detector has no timeout (the bug): the test then fails


class StuckEmbedder:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def embed(self, texts):
        self.started.set()
        self.release.wait()  # never returns on its own
        return [[1.0, 0.0] for _ in texts]


async def _assess(mon, c, g, emb):
    try:
        return await asyncio.wait_for(mon.assess(c, g, SEND, policy()), GUARD_S)
    finally:
        # Let the worker thread end before the test's event loop closes (closing waits for the
        # default executor's threads).
        emb.release.set()


async def test_a_stuck_embedder_yields_detector_unavailable():
    stuck = StuckEmbedder()
    mon = DriftMonitor([SemanticDetector(stuck, mode="always", timeout_s=0.05)], FakeClock())
    g = grant("tidy notes")
    mon.seed(g)
    [s] = await _assess(mon, call("chat.send", {"recipient": "Alice"}), g, stuck)
    assert (s.detector, s.code, s.weight) == ("semantic", "detector_unavailable", 0.0)
    assert s.evidence["error"] == "TimeoutError"
    assert stuck.started.is_set()


async def test_corroborating_call_with_a_stuck_embedder_still_gets_its_signals():
    stuck = StuckEmbedder()
    mon = DriftMonitor([ProvenanceDetector(), SemanticDetector(stuck, timeout_s=0.05)],
                       FakeClock())
    g = grant("tidy notes")
    mon.seed(g)
    sigs = await _assess(mon, call("chat.send", {"recipient": "eve@evil.example.net"}), g, stuck)
    assert [(s.detector, s.code) for s in sigs] == [("provenance", "unknown_value"),
                                                     ("semantic", "detector_unavailable")]


def test_timeout_is_configurable_and_must_be_positive():
    stuck = StuckEmbedder()
    mon = build_monitor(FakeClock(), semantic=stuck, semantic_timeout_s=0.25)
    [det] = [d for d in mon.detectors if d.name == "semantic"]
    assert det.timeout_s == 0.25
    assert SemanticDetector(stuck).timeout_s == 5.0
    with pytest.raises(ValueError):
        SemanticDetector(stuck, timeout_s=0)
