"""Error answers of the HTTP API: always `{"error": {"code", "message"}}`, never a stack trace."""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError

from .json_response import JSONResponse

__all__ = ["error_response", "read_body", "guarded", "http_exception_handler", "BodyError"]

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


async def read_body(request: Request, model: type[BaseModel], max_bytes: int,
                    *, allow_empty: bool = False) -> Any:
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
    raw = b"".join(chunks)
    if not raw.strip():
        if allow_empty:
            return model()
        raise BodyError("malformed_json", "the body is empty; a JSON object is expected", 400)
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", "") and not ctype.endswith("+json"):
        raise BodyError("unsupported_media_type", "send application/json", 415)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:  # orjson refuses integers beyond 64 bits: ask json too
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BodyError("malformed_json", "the body is not valid JSON", 400) from None
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
