"""Resources and prompts of the upstreams, forwarded to our clients (not authorized per call:
any authenticated caller may list and read them).

Lists are paginated across upstreams (our cursor holds the upstream's index and its own cursor);
an upstream that fails or answers with an error is skipped. Prompt names are namespaced like
tools; a resource is read from the upstream that listed its URI first. An error an upstream
answers with reaches the client with its code only (`public_error`), never its message or data.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Awaitable, Callable

import mcp.types as t
from mcp.server import Server
from mcp.shared.exceptions import MCPError

from .results import public_error, strip_meta
from .sessions import LruMap
from .upstreams import UpstreamManager, UpstreamUnavailable

__all__ = ["UpstreamCatalog"]

_MAX_RESOURCE_ROUTES = 10_000


def _encode_cursor(index: int, cursor: str | None) -> str:
    return base64.urlsafe_b64encode(json.dumps([index, cursor]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    try:
        index, inner = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(index), inner
    except (ValueError, TypeError):
        raise MCPError(t.INVALID_PARAMS, "invalid cursor") from None


class UpstreamCatalog:
    """The resources/* and prompts/* handlers; `authenticate(ctx)` raises for a bad caller."""

    def __init__(self, upstreams: UpstreamManager,
                 authenticate: Callable[[Any], Awaitable[Any]]) -> None:
        self.upstreams = upstreams
        self._authenticate = authenticate
        self._routes: LruMap[str, str] = LruMap(_MAX_RESOURCE_ROUTES)  # resource URI -> upstream

    async def _paged(self, kind: str, cursor: str | None,
                     fetch: Callable[[Any, str | None], Awaitable[Any]]
                     ) -> tuple[int, str, Any, str | None]:
        sources = self.upstreams.with_capability(kind)
        index, inner = _decode_cursor(cursor)
        while index < len(sources):
            ns, up = sources[index]
            try:
                page = await up.request(lambda c: fetch(c, inner))
            except (UpstreamUnavailable, MCPError):  # one failing upstream hides only its items
                index, inner = index + 1, None
                continue
            nxt = (_encode_cursor(index, page.next_cursor) if page.next_cursor
                   else _encode_cursor(index + 1, None) if index + 1 < len(sources) else None)
            return index, ns, page, nxt
        return index, "", None, None

    async def list_resources(self, ctx: Any, params: t.PaginatedRequestParams | None
                             ) -> t.ListResourcesResult:
        await self._authenticate(ctx)
        _, ns, page, nxt = await self._paged(
            "resources", params.cursor if params else None,
            lambda c, cur: c.list_resources(cursor=cur))
        if page is None:
            return t.ListResourcesResult(resources=[])
        self._routes.update({r.uri: ns for r in page.resources})
        return t.ListResourcesResult(resources=strip_meta(list(page.resources)), next_cursor=nxt)

    async def list_resource_templates(self, ctx: Any, params: t.PaginatedRequestParams | None
                                      ) -> t.ListResourceTemplatesResult:
        await self._authenticate(ctx)
        _, _, page, nxt = await self._paged(
            "resources", params.cursor if params else None,
            lambda c, cur: c.list_resource_templates(cursor=cur))
        if page is None:
            return t.ListResourceTemplatesResult(resource_templates=[])
        return t.ListResourceTemplatesResult(
            resource_templates=strip_meta(list(page.resource_templates)), next_cursor=nxt)

    async def read_resource(self, ctx: Any, params: t.ReadResourceRequestParams
                            ) -> t.ReadResourceResult:
        await self._authenticate(ctx)
        uri = str(params.uri)
        sources = self.upstreams.with_capability("resources")
        routed = self._routes.get(uri)
        ordered = sorted(sources, key=lambda s: s[0] != routed)
        first: MCPError | None = None  # from the upstream that listed the URI, if one did
        for _, up in ordered:
            try:
                res = await up.request(lambda c: c.read_resource(uri))
                return t.ReadResourceResult(contents=strip_meta(list(res.contents)))
            except MCPError as exc:
                first = first or exc
            except UpstreamUnavailable:
                pass
        if first is not None:
            raise public_error(first, "read the resource")
        raise MCPError(t.INVALID_PARAMS, f"resource not found: {uri}")

    async def list_prompts(self, ctx: Any, params: t.PaginatedRequestParams | None
                           ) -> t.ListPromptsResult:
        await self._authenticate(ctx)
        _, ns, page, nxt = await self._paged(
            "prompts", params.cursor if params else None,
            lambda c, cur: c.list_prompts(cursor=cur))
        if page is None:
            return t.ListPromptsResult(prompts=[])
        config = self.upstreams.upstreams[ns].config
        prompts = [strip_meta(p).model_copy(update={"name": config.public_name(p.name)})
                   for p in page.prompts]
        return t.ListPromptsResult(prompts=prompts, next_cursor=nxt)

    async def get_prompt(self, ctx: Any, params: t.GetPromptRequestParams) -> t.GetPromptResult:
        await self._authenticate(ctx)
        hit = self.upstreams.split(params.name)
        if hit is None:
            raise MCPError(t.INVALID_PARAMS, f"unknown prompt: {params.name}")
        up, name = hit
        try:
            res = await up.request(lambda c: c.get_prompt(name, params.arguments))
        except UpstreamUnavailable as exc:
            raise MCPError(t.INTERNAL_ERROR, f"upstream_unavailable: {exc.why}") from None
        except MCPError as exc:
            raise public_error(exc, "get the prompt") from None
        return t.GetPromptResult(description=res.description,
                                 messages=strip_meta(list(res.messages)))

    def register(self, server: Server) -> None:
        """Serve resources/prompts only if a connected upstream has them."""
        if self.upstreams.with_capability("resources"):
            server.add_request_handler("resources/list", t.PaginatedRequestParams,
                                       self.list_resources)
            server.add_request_handler("resources/templates/list", t.PaginatedRequestParams,
                                       self.list_resource_templates)
            server.add_request_handler("resources/read", t.ReadResourceRequestParams,
                                       self.read_resource)
        if self.upstreams.with_capability("prompts"):
            server.add_request_handler("prompts/list", t.PaginatedRequestParams,
                                       self.list_prompts)
            server.add_request_handler("prompts/get", t.GetPromptRequestParams, self.get_prompt)
