"""A real gateway served by uvicorn on 127.0.0.1 in a background thread, for end-to-end tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from gateway.clock import FakeClock
from gateway.config import Settings
from gateway.keys import create_key
from gateway.model import Role


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveGateway:
    url: str
    clock: FakeClock
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)
    runtime: Any = None
    loop: asyncio.AbstractEventLoop | None = None
    _server: Any = None
    _thread: threading.Thread | None = None

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (to reach the in-process gateway)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)


KEY_SPECS = {
    "agent": (Role.AGENT, "coder", {}),
    "agent2": (Role.AGENT, "other", {}),
    "reviewer": (Role.REVIEWER, "rita", {}),
    "reviewer2": (Role.REVIEWER, "sam", {}),
    "admin": (Role.ADMIN, "ada", {}),
    "maintainer": (Role.AGENT, "ops", {"policy_role": "maintainer"}),
}


def start_live_gateway(data_dir: Path, *, store: str = "sqlite", clock: FakeClock | None = None,
                       **settings: Any) -> LiveGateway:
    from adapters.compose import build_runtime

    clock = clock or FakeClock()
    port = free_port()
    live = LiveGateway(url=f"http://127.0.0.1:{port}", clock=clock, data_dir=data_dir)
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        runtime = await build_runtime(Settings(store=store, data_dir=data_dir, port=port, **settings),
                                      clock=clock)
        live.runtime = runtime
        live.loop = asyncio.get_running_loop()
        for name, (role, pname, attrs) in KEY_SPECS.items():
            new = create_key(role, pname, clock, attributes=attrs)
            await runtime.gateway.keys.add(new.record)
            live.keys[name] = new.secret_key
        config = uvicorn.Config(runtime.app(), host="127.0.0.1", port=port, log_level="warning",
                                access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        live._server = server
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        ready.set()
        try:
            await task
        finally:
            await runtime.close()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the test
            failure.append(exc)
            ready.set()

    live._thread = threading.Thread(target=target, daemon=True)
    live._thread.start()
    ready.wait(60)
    if failure:
        raise failure[0]
    return live
