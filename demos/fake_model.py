"""A scripted OpenAI-compatible model server for offline tests and demos.

It serves `POST /v1/chat/completions` and `POST /v1/responses` (no streaming) and answers from
a script: each request takes the next step of the script for its model name. A step is a set
of (parallel) tool calls, a final text, or a function of the request body that returns a step,
so a scripted "model" can react to what a tool returned (a poisoned file, an injected IBAN).
Every request body is recorded. No network beyond loopback; no API key; no token counting.

    model = FakeModel()
    model.script("fake", [call("fs.read_file", path="/workspace/a.py"), say("done")])
    with serve(model.app()) as url:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator, Mapping, Union

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = [
    "Step",
    "call",
    "calls",
    "say",
    "parse_step",
    "FakeModel",
    "tool_outputs",
    "serve",
    "serve_async",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One model turn: tool calls (run in parallel by the caller) or a final text."""

    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    text: str = ""


StepLike = Union[Step, str, Callable[[dict[str, Any]], "Step | str"]]


def call(tool: str, /, **arguments: Any) -> Step:
    return Step(tool_calls=((tool, arguments),))


def calls(*pairs: tuple[str, Mapping[str, Any]]) -> Step:
    """Several tool calls in one turn (parallel tool calls)."""
    return Step(tool_calls=tuple((name, dict(args)) for name, args in pairs))


def say(text: str) -> Step:
    return Step(text=text)


_CALL_LINE = re.compile(r"^CALL\s+(\S+)\s*(.*)$")


def parse_step(text: str) -> Step:
    """`CALL <tool> <json>` lines become tool calls; anything else is the final text."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for line in text.strip().splitlines():
        m = _CALL_LINE.match(line.strip())
        if m is None:
            return say(text)
        found.append((m.group(1), json.loads(m.group(2) or "{}")))
    return Step(tool_calls=tuple(found)) if found else say(text)


def tool_outputs(body: Mapping[str, Any]) -> list[str]:
    """The tool results present in a request (chat `tool` messages or responses outputs)."""
    out: list[str] = []
    for msg in body.get("messages") or []:
        if isinstance(msg, Mapping) and msg.get("role") == "tool":
            out.append(_text_of(msg.get("content")))
    raw_input = body.get("input")
    if isinstance(raw_input, list):
        for item in raw_input:
            if isinstance(item, Mapping) and item.get("type") == "function_call_output":
                out.append(_text_of(item.get("output")))
    return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [c.get("text", "") if isinstance(c, Mapping) else str(c) for c in content]
        return "".join(parts)
    return "" if content is None else json.dumps(content)


class FakeModel:
    """Scripts per model name, and the recorded request bodies."""

    def __init__(self, default_text: str = "done") -> None:
        self._scripts: dict[str, deque[StepLike]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.default_text = default_text
        self.requests: list[dict[str, Any]] = []

    def script(self, model: str, steps: list[StepLike]) -> None:
        with self._lock:
            self._scripts[model] = deque(steps)

    def pending(self, model: str) -> int:
        with self._lock:
            return len(self._scripts.get(model, ()))

    def next_step(self, body: dict[str, Any]) -> Step:
        model = str(body.get("model", ""))
        with self._lock:
            self.requests.append(body)
            queue = self._scripts.get(model) or self._scripts.get("*")
            item: StepLike | None = queue.popleft() if queue else None
        if item is None:
            return say(self.default_text)
        if callable(item) and not isinstance(item, Step):
            item = item(body)
        return parse_step(item) if isinstance(item, str) else item

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    async def _chat(self, request: Request) -> JSONResponse:
        body = await _json(request)
        if body is None:
            return _bad_request()
        step = self.next_step(body)
        message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
        finish = "stop"
        if step.tool_calls:
            message["tool_calls"] = [
                {"id": self._id("call"), "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for name, args in step.tool_calls
            ]
            finish = "tool_calls"
        return JSONResponse({
            "id": self._id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                         "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    async def _responses(self, request: Request) -> JSONResponse:
        body = await _json(request)
        if body is None:
            return _bad_request()
        step = self.next_step(body)
        output: list[dict[str, Any]] = []
        for name, args in step.tool_calls:
            output.append({"type": "function_call", "id": self._id("fc"),
                           "call_id": self._id("call"), "name": name,
                           "arguments": json.dumps(args), "status": "completed"})
        if not step.tool_calls:
            output.append({"type": "message", "id": self._id("msg"), "role": "assistant",
                           "status": "completed",
                           "content": [{"type": "output_text", "text": step.text,
                                        "annotations": []}]})
        return JSONResponse({
            "id": self._id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "fake"),
            "status": "completed",
            "output": output,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": None,
            "top_p": None,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        })

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/responses", self._responses, methods=["POST"]),
        ])


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _bad_request() -> JSONResponse:
    return JSONResponse({"error": {"code": "malformed_json", "message": "body is not a JSON object"}},
                        status_code=400)


@contextlib.contextmanager
def serve(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on `host`, a free port, in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="auto", access_log=False)
    server = uvicorn.Server(config)

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name=f"serve-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the local server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5.0)
        sock.close()


@contextlib.asynccontextmanager
async def serve_async(app: Any, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an ASGI app in the running event loop (its lifespan runs in this loop too)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the local server did not start")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10.0)
        sock.close()
