"""Error answers of the HTTP API: always `{"error": {"code", "message"}}`, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.errors import GatewayError

from .json_response import JSONResponse

__all__ = ["error_response", "read_body", "read_bytes", "parse_json", "MAX_JSON_DEPTH", "guarded",
           "http_exception_handler", "BodyError"]

log = logging.getLogger("jitgate.http")

_STATUS_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
                 421: "misdirected_request", 429: "rate_limited"}


def error_response(code: str, message: str, status: int, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    err: dict[str, Any] = {"code": code, "message": message}
    if details:
        err["details"] = details
    return JSONResponse({"error": err}, status_code=status, headers=headers)


class BodyError(Exception):
    def __init__(self, code: str, message: str, status: int, details: Any = None) -> None:
        self.code, self.message, self.status, self.details = code, message, status, details
        super().__init__(message)


def _validation_details(exc: ValidationError) -> tuple[str, list[dict[str, str]]]:
    problems = []
    code = "invalid_request"
    for e in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in e.get("loc", ()))
        if e.get("type") == "extra_forbidden":
            code = "unknown_field"
        problems.append({"field": loc, "problem": e.get("type", "invalid"),
                         "message": str(e.get("msg", ""))[:200]})
    return code, problems[:20]


MAX_JSON_DEPTH = 128
"""How deep a request body may nest. Deeper values would reach code that recurses (canonical
JSON of arguments and scopes, validation) and fail there (a 500, or a call denied as
audit_unavailable); the edge refuses them instead."""


def _too_deep(data: Any, limit: int) -> bool:
    """Whether `data` (parsed JSON) nests arrays/objects more than `limit` levels, iteratively."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if type(value) is dict else value
        if depth > limit:
            return True
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def parse_json(raw: bytes) -> Any:
    """Strict JSON (RFC 8259, UTF-8): no NaN/Infinity, no lone surrogates, no numbers beyond a
    double, at most MAX_JSON_DEPTH levels. Anything else is a `malformed_json` BodyError.

    Only orjson parses: the stdlib `json` accepted exactly what must be refused (NaN, lone
    surrogates, 1e400 as inf, huge integers) and raised RecursionError on deep nesting."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError("malformed_json", f"the body is not valid JSON: {exc.msg}", 400) from None
    # each level takes two bytes at least, so a short body cannot nest too deep
    if len(raw) > 2 * MAX_JSON_DEPTH and (type(data) is dict or type(data) is list) and \
            _too_deep(data, MAX_JSON_DEPTH):
        raise BodyError("malformed_json",
                        f"the body nests deeper than {MAX_JSON_DEPTH} levels", 400)
    return data


async def read_bytes(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with `body_too_large` (413) as soon as it passes `max_bytes`, so a
    large body is never buffered whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise BodyError("body_too_large", f"the body is over {max_bytes} bytes", 413)
        except ValueError:
            raise BodyError("invalid_request", "bad Content-Length", 400) from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyError("body_too_large", f"the body is over {max_bytes} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, model: type[BaseModel], max_bytes: int,
                    *, allow_empty: bool = False) -> Any:
    raw = await read_bytes(request, max_bytes)
    if not raw.strip():
        if allow_empty:
            return model()
        raise BodyError("malformed_json", "the body is empty; a JSON object is expected", 400)
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", "") and not ctype.endswith("+json"):
        raise BodyError("unsupported_media_type", "send application/json", 415)
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise BodyError("invalid_request", "the body must be a JSON object", 422)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        code, problems = _validation_details(exc)
        raise BodyError(code, "the request body is not valid", 422, problems) from None


Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(fn: Endpoint) -> Endpoint:
    """Turn every failure of an endpoint into a JSON error; unexpected ones into a bare 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except GatewayError as exc:
            return error_response(exc.code, exc.message, exc.status, exc.details or None,
                                  headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
        except BodyError as exc:
            return error_response(exc.code, exc.message, exc.status, exc.details)
        except ClientDisconnect:  # gone before its body arrived: nobody reads this answer
            log.debug("client left during %s %s", request.method, request.url.path)
            return error_response("invalid_request", "the client closed the request", 400)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error_response("internal_error", "the gateway failed to handle the request", 500)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        code = _STATUS_CODES.get(exc.status_code, "bad_request")
        return error_response(code, str(exc.detail or code), exc.status_code)
    log.exception("unhandled error")
    return error_response("internal_error", "the gateway failed to handle the request", 500)
