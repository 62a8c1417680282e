"""The upstream layer against real servers we did not write."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from adapters.mcp.upstreams import UpstreamConfig, UpstreamManager, UpstreamUnavailable
from mcp_peers import everything, filesystem, peers, time_server

pytestmark = peers


def _children_matching(word: str) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if word in cmd and int(p) != os.getpid():
            out.append(int(p))
    return out


def test_config_requires_transport_fields() -> None:
    with pytest.raises(ValueError):
        UpstreamConfig(name="x", transport="stdio")
    with pytest.raises(ValueError):
        UpstreamConfig(name="x", transport="http")
    with pytest.raises(ValueError):
        UpstreamConfig(name="a.b", transport="http", url="http://127.0.0.1:1/mcp")
    assert UpstreamConfig(name="x", transport="http", url="http://127.0.0.1:1/mcp",
                          prefix="p").namespace == "p"


async def test_three_real_upstreams_are_namespaced_and_callable(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    cfgs = [filesystem(tmp_path), everything(), time_server()]
    async with UpstreamManager(cfgs) as mgr:
        names = {rt.public_name for rt in await mgr.tools()}
        assert {"fs.read_text_file", "fs.write_file", "every.echo", "time.get_current_time"} <= names
        # the two eras are both consumed
        assert mgr.upstreams["fs"]._client.protocol_version == "2025-11-25"
        assert mgr.upstreams["time"]._client.protocol_version == "2026-07-28"

        fs_tool = await mgr.find_tool("fs.read_text_file")
        assert fs_tool is not None and mgr.annotations_of(fs_tool.tool)["read_only"] is True
        res = await fs_tool.upstream.call_tool("read_text_file", {"path": str(tmp_path / "a.txt")})
        assert not res.is_error and res.content[0].text == "hello"

        up, name = mgr.split("time.get_current_time")
        res = await up.call_tool(name, {"timezone": "UTC"})
        assert res.meta is None and not res.is_error
        assert '"timezone"' in res.content[0].text

        res = await mgr.upstreams["every"].call_tool("echo", {"message": "hi"})
        assert res.content[0].text == "Echo: hi"
        # capabilities reflect what each upstream has
        assert [ns for ns, _ in mgr.with_capability("prompts")] == ["every", "time"]
        assert await mgr.find_tool("fs.nope") is None
        assert await mgr.find_tool("nons.read") is None


async def test_crashed_stdio_upstream_fails_fast_then_restarts(tmp_path: Path) -> None:
    marker = str(tmp_path / "crashme")
    os.mkdir(marker)
    cfg = filesystem(Path(marker))
    async with UpstreamManager([cfg], backoff_min_s=0.05, backoff_max_s=0.2) as mgr:
        up = mgr.upstreams["fs"]
        assert up.is_up
        for pid in _children_matching(marker):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(UpstreamUnavailable) as err:
            for _ in range(50):  # the first call after the crash sees the closed pipe
                await up.call_tool("list_allowed_directories", {})
        assert err.value.code == "upstream_unavailable"
        assert await up.wait_up(10)
        assert up.restarts == 1
        res = await up.call_tool("list_allowed_directories", {})
        assert marker in res.content[0].text


async def test_unreachable_http_upstream_is_down_not_hanging() -> None:
    cfg = UpstreamConfig(name="gone", transport="http", url="http://127.0.0.1:9/mcp", timeout_s=2)
    async with UpstreamManager([cfg], start_timeout_s=0.5, backoff_min_s=0.05) as mgr:
        up = mgr.upstreams["gone"]
        assert not up.is_up
        with pytest.raises(UpstreamUnavailable):
            await up.call_tool("x", {})
        assert await mgr.tools() == []
