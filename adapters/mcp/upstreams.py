"""Upstream MCP servers (configured as upstream_config.py says): one kept connection each,
restart with backoff.

Each upstream runs under a supervisor task that owns its `Client` (an anyio context must be
entered and left by the same task). A call on a dead connection fails at once with
`UpstreamUnavailable` (code `upstream_unavailable`) and wakes the supervisor, which reconnects
with exponential backoff (tenacity); a successful connection starts the backoff over. Nothing
waits on a down upstream.

Every failure of a request (connection lost, timed out, an answer that does not conform to the
protocol, anything unexpected) is an `UpstreamUnavailable` with a short fixed reason; only an
error the upstream answered with (`MCPError`) passes as such. An upstream whose tools/list
failed is not asked again for `LIST_RETRY_S` (or until it reconnects or announces a change):
meanwhile its last known list is served, or none, so one hung upstream does not hold up every
tools/list.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import IO, Any, Callable, Sequence

import anyio
import httpx2
import mcp.types as t
import tenacity
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from gateway.clock import Clock, SystemClock

from .results import rebuild_call_result
from .upstream_config import SECRET_REF, SecretResolver, UpstreamConfig

__all__ = [
    "UpstreamConfig",
    "UpstreamUnavailable",
    "Upstream",
    "RoutedTool",
    "UpstreamManager",
    "SecretResolver",
]

log = logging.getLogger("jitgate.mcp.upstreams")

CONNECTION_CLOSED = t.CONNECTION_CLOSED
REQUEST_TIMEOUT = t.REQUEST_TIMEOUT
LIST_RETRY_S = 30.0


class UpstreamUnavailable(Exception):
    """The upstream is down, restarting, or died during the call."""

    code = "upstream_unavailable"

    def __init__(self, upstream: str, why: str = "not reachable") -> None:
        self.upstream = upstream
        self.why = why
        super().__init__(f"upstream {upstream!r} {why}")


@dataclass(frozen=True, slots=True)
class RoutedTool:
    """An upstream tool under its public (namespaced) name."""

    public_name: str
    upstream: "Upstream"
    tool: t.Tool

    def public_definition(self) -> t.Tool:
        # No output_schema: refusals carry {code, decision_id} as structured content, and
        # clients (the TypeScript SDK) validate it against the schema even on is_error results.
        return t.Tool(
            name=self.public_name,
            title=self.tool.title,
            description=self.tool.description,
            input_schema=self.tool.input_schema,
            annotations=self.tool.annotations,
        )


def _annotations(tool: t.Tool) -> dict[str, Any]:
    a = tool.annotations
    if a is None:
        return {}
    out = {
        "read_only": a.read_only_hint,
        "destructive": a.destructive_hint,
        "idempotent": a.idempotent_hint,
        "open_world": a.open_world_hint,
    }
    return {k: v for k, v in out.items() if v is not None}


class Upstream:
    """One upstream server with its kept connection and supervisor."""

    def __init__(self, config: UpstreamConfig, *, secret_resolver: SecretResolver | None = None,
                 backoff_min_s: float = 0.2, backoff_max_s: float = 10.0,
                 errlog: IO[str] | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self._secret_resolver = secret_resolver
        self._backoff = (backoff_min_s, backoff_max_s)
        self._errlog = errlog
        self._clock: Clock = clock or SystemClock()
        self._client: Client | None = None
        self._broken = anyio.Event()
        self._up = anyio.Event()
        self._settled = anyio.Event()  # the first connection attempt succeeded or failed
        self._closed = anyio.Event()
        self._closing = False
        self._tools: list[t.Tool] | None = None
        self._last_tools: list[t.Tool] | None = None  # the last list the upstream gave
        self._list_retry_at = 0.0  # tools/list failed: not asked again before this time
        self._list_failure = ""  # why it failed
        self.restarts = 0
        self.on_tools_changed: Callable[[], Any] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def is_up(self) -> bool:
        return self._client is not None

    @property
    def capabilities(self) -> t.ServerCapabilities | None:
        return self._client.server_capabilities if self._client is not None else None

    # -- connection ---------------------------------------------------------------------------

    def _stdio_env(self) -> dict[str, str]:
        env = {k: SECRET_REF.sub(lambda m: self._secret(m.group(1)), v)
               for k, v in self.config.env.items()}
        for var, secret_name in self.config.secret_env.items():
            env[var] = self._secret(secret_name)
        return env

    def _secret(self, name: str) -> str:
        if self._secret_resolver is None:
            raise UpstreamUnavailable(self.name, "needs a secret resolver")
        try:
            return self._secret_resolver(name)
        except Exception:  # noqa: BLE001 - never echo the resolver's error (or the secret)
            raise UpstreamUnavailable(self.name, f"cannot resolve secret {name!r}") from None

    def _http_headers(self) -> dict[str, str]:
        """Configured headers with `${secret:NAME}` resolved, plus `secret_env` (header -> secret
        name). Resolved here, at connect time, and kept only on the upstream's HTTP client."""
        headers = {k: SECRET_REF.sub(lambda m: self._secret(m.group(1)), v)
                   for k, v in self.config.headers.items()}
        for header, secret_name in self.config.secret_env.items():
            headers[header] = self._secret(secret_name)
        return headers

    @contextlib.asynccontextmanager
    async def _connect(self):  # type: ignore[no-untyped-def]
        cfg = self.config
        handler = self._message_handler
        if cfg.transport == "stdio":
            params = StdioServerParameters(command=cfg.command or "", args=list(cfg.args),
                                           env=self._stdio_env(), cwd=cfg.cwd)
            errlog = self._errlog or open(os.devnull, "w")  # noqa: SIM115 - closed below
            try:
                transport = stdio_client(params, errlog=errlog)
                async with Client(transport, cache=None, read_timeout_seconds=cfg.timeout_s,
                                  message_handler=handler) as client:
                    yield client
            finally:
                if errlog is not self._errlog:
                    errlog.close()
        else:
            headers = self._http_headers()
            async with httpx2.AsyncClient(headers=headers, timeout=cfg.timeout_s) as http:
                transport = streamable_http_client(cfg.url or "", http_client=http)
                async with Client(transport, cache=None, read_timeout_seconds=cfg.timeout_s,
                                  message_handler=handler) as client:
                    yield client

    async def _message_handler(self, message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, t.ToolListChangedNotification):
            self._tools = None
            self._list_retry_at = 0.0
            if self.on_tools_changed is not None:
                res = self.on_tools_changed()
                if hasattr(res, "__await__"):
                    await res

    async def supervise(self) -> None:
        """Keep the connection up until `close()`; restart with backoff when it breaks.

        tenacity drives the retries (exponential waits between `backoff_min_s` and
        `backoff_max_s`, interruptible by `close()`); a connection that came up makes its
        attempt the first again, so the backoff starts over after every healthy connection."""
        lo, hi = self._backoff
        retrying = tenacity.AsyncRetrying(
            wait=tenacity.wait_exponential(multiplier=lo, min=lo, max=hi),
            retry=tenacity.retry_if_exception_type(Exception), sleep=self._pause,
            stop=lambda _state: self._closing,
            before_sleep=self._log_retry, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    if self._closing:
                        return
                    try:
                        await self._run_once(lambda: setattr(attempt.retry_state,
                                                             "attempt_number", 1))
                    finally:
                        self._settled.set()
        except Exception as exc:  # noqa: BLE001 - only when closing; never crash the host
            log.debug("upstream %s supervisor ended: %s", self.name, type(exc).__name__)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        level = logging.WARNING if state.attempt_number == 1 else logging.DEBUG
        log.log(level, "upstream %s: %s; reconnecting in %.2f s", self.name,
                type(exc).__name__, state.upcoming_sleep)

    async def _pause(self, delay: float) -> None:
        """Wait `delay` seconds before reconnecting, or until `close()`."""
        with anyio.move_on_after(delay):
            await self._closed.wait()

    async def _run_once(self, connected: Callable[[], None]) -> None:
        try:
            async with self._connect() as client:
                self._broken = anyio.Event()
                self._tools = None
                self._list_retry_at = 0.0
                connected()
                self._client = client
                self._up.set()
                self._settled.set()
                log.info("upstream %s connected (%s)", self.name, client.protocol_version)
                await self._broken.wait()
        finally:
            self._client = None
            if self._up.is_set():
                self._up = anyio.Event()
        if not self._closing:
            self.restarts += 1
            raise UpstreamUnavailable(self.name, "connection lost")

    async def wait_settled(self, timeout_s: float) -> bool:
        """Wait until the first connection attempt has ended either way; True if up."""
        with anyio.move_on_after(timeout_s):
            await self._settled.wait()
        return self.is_up

    async def wait_up(self, timeout_s: float) -> bool:
        with anyio.move_on_after(timeout_s):
            while not self.is_up:
                await self._up.wait()
        return self.is_up

    def close(self) -> None:
        self._closing = True
        self._closed.set()
        self._broken.set()

    def _mark_broken(self) -> None:
        self._client = None
        if self._up.is_set():
            self._up = anyio.Event()
        self._broken.set()

    # -- requests -----------------------------------------------------------------------------

    async def _request(self, fn: Callable[[Client], Any]) -> Any:
        client = self._client
        if client is None:
            raise UpstreamUnavailable(self.name, "is down (restarting)")
        try:
            return await fn(client)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._mark_broken()
                raise UpstreamUnavailable(self.name, "closed the connection") from None
            if exc.code == REQUEST_TIMEOUT:
                raise UpstreamUnavailable(self.name, "timed out") from None
            raise
        except TimeoutError:
            raise UpstreamUnavailable(self.name, "timed out") from None
        except (httpx2.HTTPError, anyio.BrokenResourceError, anyio.ClosedResourceError,
                anyio.EndOfStream, OSError):
            self._mark_broken()
            raise UpstreamUnavailable(self.name, "connection failed") from None
        except UpstreamUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - pydantic.ValidationError and anything else
            log.warning("upstream %s sent an invalid answer (%s)", self.name, type(exc).__name__)
            raise UpstreamUnavailable(self.name, "sent an invalid answer") from None

    async def list_tools(self) -> list[t.Tool]:
        """The upstream's tools (cached until it reconnects or announces a change). While it
        is down this raises at once; while it is up but its tools/list failed lately, the last
        list it gave is served (none: raises)."""
        if self._tools is not None and self.is_up:
            return self._tools
        if not self.is_up:
            raise UpstreamUnavailable(self.name, "is down (restarting)")
        caps = self.capabilities
        if caps is not None and caps.tools is None:
            return []
        if self._clock.now() < self._list_retry_at:
            if self._last_tools is not None:
                return self._last_tools
            raise UpstreamUnavailable(self.name, self._list_failure)
        try:
            tools = await self._fetch_tools()
        except (UpstreamUnavailable, MCPError) as exc:
            self._list_retry_at = self._clock.now() + LIST_RETRY_S
            self._list_failure = (exc.why if isinstance(exc, UpstreamUnavailable)
                                  else "refused to list its tools")
            if self._last_tools is not None and self.is_up:
                return self._last_tools
            raise UpstreamUnavailable(self.name, self._list_failure) from None
        self._tools = self._last_tools = tools
        return tools

    async def _fetch_tools(self) -> list[t.Tool]:
        tools: list[t.Tool] = []
        cursor: str | None = None
        for _ in range(100):
            page = await self._request(lambda c: c.list_tools(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> t.CallToolResult:
        res = await self._request(lambda c: c.call_tool(name, arguments))
        return rebuild_call_result(res)

    async def request(self, fn: Callable[[Client], Any]) -> Any:
        """Any other request (resources, prompts) on the kept connection."""
        return await self._request(fn)


class UpstreamManager:
    """All upstreams, their supervisors, and the namespaced tool routing.

    Use as `async with UpstreamManager(configs) as upstreams:`; entering starts every
    supervisor and waits (up to `start_timeout_s`) for each first connection attempt to end:
    an upstream that fails at once stays down (and keeps retrying) without delaying the rest.
    """

    def __init__(self, configs: Sequence[UpstreamConfig], *,
                 secret_resolver: SecretResolver | None = None,
                 start_timeout_s: float = 20.0, backoff_min_s: float = 0.2,
                 backoff_max_s: float = 10.0, errlog: IO[str] | None = None,
                 clock: Clock | None = None) -> None:
        names = [c.namespace for c in configs]
        if len(set(names)) != len(names):
            raise ValueError("upstream names/prefixes must be unique")
        self.upstreams: dict[str, Upstream] = {
            c.namespace: Upstream(c, secret_resolver=secret_resolver, backoff_min_s=backoff_min_s,
                                  backoff_max_s=backoff_max_s, errlog=errlog, clock=clock)
            for c in configs
        }
        self._start_timeout_s = start_timeout_s
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> "UpstreamManager":
        stack = contextlib.AsyncExitStack()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        for up in self.upstreams.values():
            self._tg.start_soon(up.supervise)
        self._stack = stack
        with anyio.move_on_after(self._start_timeout_s):
            async with anyio.create_task_group() as tg:
                for up in self.upstreams.values():
                    tg.start_soon(up.wait_settled, self._start_timeout_s)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for up in self.upstreams.values():
            up.close()
        if self._stack is not None:
            await self._stack.__aexit__(*exc)

    def set_tools_changed_callback(self, callback: Callable[[], Any]) -> None:
        for up in self.upstreams.values():
            up.on_tools_changed = callback

    async def tools(self) -> list[RoutedTool]:
        """Every tool of every reachable upstream, under its public name (asked all at once;
        an upstream that fails is left out)."""
        found: dict[str, list[t.Tool]] = {}

        async def one(ns: str, up: Upstream) -> None:
            try:
                found[ns] = await up.list_tools()
            except UpstreamUnavailable:
                pass

        async with anyio.create_task_group() as tg:
            for ns, up in self.upstreams.items():
                if up.is_up:
                    tg.start_soon(one, ns, up)
        return [RoutedTool(up.config.public_name(tool.name), up, tool)
                for ns, up in self.upstreams.items() for tool in found.get(ns, [])]

    def split(self, public_name: str) -> tuple[Upstream, str] | None:
        """(upstream, its own tool name) for a public name; the longest matching prefix wins,
        so `a_b` + `_` and `a` + `_` cannot shadow each other."""
        best: tuple[Upstream, str] | None = None
        best_len = -1
        for ns, up in self.upstreams.items():
            head = ns + up.config.separator
            if public_name.startswith(head) and len(public_name) > len(head) and len(head) > best_len:
                best, best_len = (up, public_name[len(head):]), len(head)
        return best

    async def find_tool(self, public_name: str) -> RoutedTool | None:
        """The tool behind a public name; raises UpstreamUnavailable if its upstream is down."""
        hit = self.split(public_name)
        if hit is None:
            return None
        up, name = hit
        for tool in await up.list_tools():
            if tool.name == name:
                return RoutedTool(public_name, up, tool)
        return None

    def with_capability(self, kind: str) -> list[tuple[str, Upstream]]:
        return [(ns, up) for ns, up in self.upstreams.items()
                if up.capabilities is not None and getattr(up.capabilities, kind) is not None]

    annotations_of = staticmethod(_annotations)
