"""A gateway for the HTTP benchmark: SQLite store in a temp dir, one agent key, one grant, and a
no-op route in the same app. Writes `{"key", "grant_id", "port"}` to the file given as argv[1]."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.compose import build_runtime, settle_heap
from benchmarks.bench_policy import bench_policy
from adapters.http.app import build_app
from gateway.config import Settings
from gateway.grants import GrantRequest
from gateway.keys import create_key
from gateway.model import Role


async def main(out: Path, port: int, drift: bool) -> None:
    data = Path(tempfile.mkdtemp(prefix="jitgate-bench-"))
    runtime = await build_runtime(Settings(data_dir=data, port=port, drift_enabled=drift),
                                  policy=bench_policy())
    gw = runtime.gateway
    new = create_key(Role.AGENT, "bench", gw.clock)
    await gw.keys.add(new.record)
    principal = await gw.authenticate(new.secret_key)
    grant = await gw.request_grant(principal, GrantRequest(
        objective="Read the documentation under /workspace/docs",
        scope=[{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/docs"}}}],
        ttl_s=3600))

    async def noop(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    app = build_app(runtime.services, extra_routes=[Route("/bench/noop", noop, methods=["POST"])],
                    metrics=runtime.extras.get("metrics"))
    settle_heap()  # as `jitgate serve` does
    out.write_text(json.dumps({"key": new.secret_key, "grant_id": grant.grant_id, "port": port}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           access_log=False, lifespan="on"))
    try:
        await server.serve()
    finally:
        await runtime.close()


if __name__ == "__main__":
    if len(sys.argv) > 4:
        sys.setswitchinterval(float(sys.argv[4]))
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "drift"))
