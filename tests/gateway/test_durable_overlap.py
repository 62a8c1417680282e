"""The in-process path overlaps the decision's fsync with the tool call: the decision is
committed before the tool runs, and no result comes back before it is on stable storage."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from adapters.compose import build_runtime
from gateway.config import Settings
from gateway.grants import GrantRequest
from gateway.model import Principal, Role, ToolCall
from tests.support.wal_faults import WalFaults, install_wal_faults

AGENT = Principal("agent:coder", Role.AGENT, "coder")
READ_DOCS = [{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}]


@pytest.fixture
def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WalFaults:
    return install_wal_faults(monkeypatch, tmp_path / "jitgate.db")


@pytest.fixture
async def runtime(tmp_path: Path, faults: WalFaults):  # type: ignore[no-untyped-def]
    rt = await build_runtime(Settings(data_dir=tmp_path, drift_enabled=False))
    try:
        yield rt
    finally:
        await rt.close()


def _decided(db: Path) -> list[str]:
    c = sqlite3.connect(db)
    try:
        return [r[0] for r in c.execute(
            "SELECT decision_id FROM audit_records WHERE type = 'call.decided'")]
    finally:
        c.close()


async def test_tool_runs_after_the_commit_and_the_result_waits_for_the_sync(
        tmp_path: Path, faults: WalFaults, runtime) -> None:  # type: ignore[no-untyped-def]
    gw = runtime.gateway
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    try:
        faults.hold()
        seen: dict[str, list[str]] = {}

        async def forward(call: ToolCall, credential: object) -> str:
            seen["decided"] = _decided(tmp_path / "jitgate.db")  # committed, sync held
            return "contents"

        run = asyncio.ensure_future(gw.run(ToolCall(AGENT, "fs.read_file",
                                                    {"path": "/workspace/docs/a.md"},
                                                    grant_id=g.grant_id), forward))
        for _ in range(200):
            if "decided" in seen:
                break
            await asyncio.sleep(0)
        assert len(seen["decided"]) == 1 and not run.done()  # the tool ran; no answer yet
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert not run.done()
        faults.hold(False)
        result = await run
        assert result.output == "contents" and result.decision.allowed
        assert result.decision.decision_id == seen["decided"][0]
    finally:
        faults.hold(False)


async def test_result_is_withheld_when_the_decision_cannot_be_made_durable(
        faults: WalFaults, runtime) -> None:  # type: ignore[no-untyped-def]
    gw = runtime.gateway
    g = await gw.request_grant(AGENT, GrantRequest("read the docs", READ_DOCS, 600))
    faults.fail()
    ran: list[str] = []

    async def forward(call: ToolCall, credential: object) -> str:
        ran.append(call.arguments["path"])
        return "SECRET CONTENTS"

    result = await gw.run(ToolCall(AGENT, "fs.read_file", {"path": "/workspace/docs/a.md"},
                                   grant_id=g.grant_id), forward)
    assert ran == ["/workspace/docs/a.md"]
    assert result.output is None and result.error == "audit_unavailable"
    assert result.decision.code == "audit_unavailable" and not result.decision.allowed
    # the engine refuses every later write: the next call is denied before it runs
    again = await gw.run(ToolCall(AGENT, "fs.read_file", {"path": "/workspace/docs/b.md"},
                                  grant_id=g.grant_id), forward)
    assert again.decision.code == "audit_unavailable" and ran == ["/workspace/docs/a.md"]
