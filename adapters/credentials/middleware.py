"""ASGI middleware for HTTP tools: refuse any request whose call token does not verify.

    app = Starlette(routes=[...])
    app = CallTokenMiddleware(app, CallTokenVerifier(jwks_url, audience="billing"), tool="billing.refund")

The token is read from ``X-JITGate-Call-Token`` or ``Authorization: Bearer``; the arguments are the
JSON object body (GET/DELETE/HEAD: the query parameters, decoded as ``HttpToolForwarder`` encodes
them: strings as they are, the parameters named in ``X-JITGate-Json-Args`` from their JSON text;
a repeated parameter is refused). On success the verified call
is in ``scope["state"]["jitgate_call"]`` (``request.state.jitgate_call`` in Starlette) and the body
is replayed to the app unchanged. On failure: 401 ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl

from .http_tool import CALL_TOKEN_HEADER, JSON_ARGS_HEADER, QUERY_METHODS, arguments_from_query
from .verifier import CallTokenVerifier, TokenError

__all__ = ["CallTokenMiddleware", "json_body_arguments", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1024 * 1024
ArgumentsFrom = Callable[[Mapping[str, Any], bytes], Mapping[str, Any]]
_JSON_ARGS = JSON_ARGS_HEADER.lower().encode("latin-1")


def json_body_arguments(scope: Mapping[str, Any], body: bytes) -> Mapping[str, Any]:
    """The default: the JSON object body, or the query parameters for GET/DELETE/HEAD."""
    if scope.get("method", "GET") in QUERY_METHODS:
        named = [v for k, v in scope.get("headers", []) if k == _JSON_ARGS]
        if len(named) > 1:
            raise ValueError("the JSON argument names are given twice")
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        return arguments_from_query(pairs, named[0].decode("latin-1") if named else None)
    if not body:
        return {}
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("arguments must be a JSON object")
    return value


class CallTokenMiddleware:
    def __init__(self, app: Any, verifier: CallTokenVerifier, *,
                 tool: str | Callable[[Mapping[str, Any]], str],
                 arguments_from: ArgumentsFrom = json_body_arguments,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.verifier = verifier
        self.tool = tool
        self.arguments_from = arguments_from
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _token_from(scope)
        if token is None:
            await _refuse(send, 401, "unauthenticated", "a call token is required")
            return
        body, complete = await _read_body(receive, self.max_body_bytes)
        if not complete:
            await _refuse(send, 413, "body_too_large", "the request body is too large")
            return
        try:
            arguments = self.arguments_from(scope, body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            await _refuse(send, 400, "malformed_json", "the arguments are not a JSON object "
                                                       "(or a query they can come from)")
            return
        tool = self.tool(scope) if callable(self.tool) else self.tool
        try:
            call = await self.verifier.verify(token, tool=tool, arguments=arguments)
        except TokenError as err:
            await _refuse(send, 401, err.code, err.message)
            return
        scope.setdefault("state", {})["jitgate_call"] = call
        await self.app(scope, _replay(body, receive), send)


def _token_from(scope: Mapping[str, Any]) -> str | None:
    dedicated = CALL_TOKEN_HEADER.lower().encode("latin-1")
    bearer = None
    for name, value in scope.get("headers", []):
        if name == dedicated:
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                bearer = rest.strip()
    return bearer


async def _read_body(receive: Any, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    payload = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode("ascii"))]
    if status == 401:
        headers.append((b"www-authenticate", f'Bearer error="invalid_token", '
                                             f'error_description="{code}"'.encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
