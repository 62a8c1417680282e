"""A live JITGate (tests/support/live.py) fronting real MCP peers, and clients to reach it."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from adapters.mcp.upstreams import UpstreamConfig
from gateway.keys import create_key
from gateway.model import Role
from policies.loader import default_pack_paths
from tests.support.live import LiveGateway, start_live_gateway

HERE = Path(__file__).resolve().parent
TEST_POLICY = HERE / "mcp_policy.yaml"
FIXTURE = HERE / "fixture_server.py"


def policy_files() -> list[str]:
    """The real default pack plus the test pack for the non-filesystem peers."""
    return [*(str(p) for p in default_pack_paths()), str(TEST_POLICY)]


def fixture(name: str = "fix", *, desc_file: Path | None = None) -> UpstreamConfig:
    env = {"FIXTURE_DESC_FILE": str(desc_file)} if desc_file else {}
    return UpstreamConfig(name=name, transport="stdio", command=sys.executable,
                          args=[str(FIXTURE), "stdio"], env=env)


@contextlib.contextmanager
def live_mcp(data_dir: Path, upstreams: list[UpstreamConfig], **settings: Any
             ) -> Iterator[LiveGateway]:
    """A real gateway (sqlite store, FakeClock) with `upstreams`; keys in `live.keys`, plus
    `tester` (policy role `mcptester` from mcp_policy.yaml)."""
    live = start_live_gateway(data_dir, store="sqlite",
                              upstreams=[u.model_dump(exclude_none=True) for u in upstreams],
                              policy_files=policy_files(), **settings)
    try:
        new = create_key(Role.AGENT, "tester", live.clock,
                         attributes={"policy_role": "mcptester"})
        live.run(live.runtime.gateway.keys.add(new.record))
        live.keys["tester"] = new.secret_key
        yield live
    finally:
        live.stop()


def principal_of(live: LiveGateway, key: str) -> Any:
    return live.run(live.runtime.gateway.authenticate(live.keys[key]))


@contextlib.asynccontextmanager
async def mcp_client(live: LiveGateway, key: str, *, mode: str = "auto",
                     grant_id: str | None = None, **client_kw: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {live.keys[key]}"}
    if grant_id:
        headers["X-JITGate-Grant"] = grant_id
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(f"{live.url}/mcp", http_client=http), mode=mode,
                          cache=None, **client_kw) as c:
            yield c


async def api(live: LiveGateway, key: str, method: str, path: str,
              json: Any = None) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=live.url, timeout=30,
                                  headers={"Authorization": f"Bearer {live.keys[key]}"}) as h:
        return await h.request(method, path, json=json)


def audit(live: LiveGateway, **filters: Any) -> list[Any]:
    live.run(live.runtime.gateway.drain())  # outcomes are recorded right after the answer
    return live.run(live.runtime.gateway.audit.read(limit=100_000, **filters))


def assert_allowed_calls_audited(live: LiveGateway) -> None:
    """No allowed call goes unaudited: each allowed `call.decided` has its `call.completed`."""
    records = audit(live)
    allowed = {r.decision_id for r in records
               if r.type == "call.decided" and r.data.get("effect") == "allow"}
    completed = {r.decision_id for r in records if r.type == "call.completed"}
    assert allowed, "no allowed call was recorded"
    assert allowed <= completed, f"allowed without call.completed: {sorted(allowed - completed)}"


def result_code(res: Any) -> str:
    """The `code` a JITGate refusal carries in its structured content ("" for a plain result)."""
    return (res.structured_content or {}).get("code", "")
