"""A tiny OpenAI-compatible model server on 127.0.0.1 for the judge tests.

POST /v1/chat/completions answers `{"aligned": ...}` as the assistant message: misaligned when
the tool call mentions any word of `FakeJudge.bad_words`, "garbage" when `mode == "garbage"`,
and it stalls `delay_s` seconds when told to (to test the timeout). Request bodies are recorded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class FakeJudge:
    def __init__(self, bad_words: tuple[str, ...] = ("US133",)) -> None:
        self.bad_words = bad_words
        self.mode = "json"
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        user = body["messages"][-1]["content"]
        call = user.split("Tool call:", 1)[-1]
        aligned = not any(w in call for w in self.bad_words)
        content = (json.dumps({"aligned": aligned, "reason": "fits" if aligned else "off-task"})
                   if self.mode == "json" else "I think it is probably fine")
        return JSONResponse({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeJudge":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake judge did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
