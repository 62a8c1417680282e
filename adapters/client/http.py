"""The HTTP client of the JITGate API, async (`GatewayClient`) and sync (`SyncGatewayClient`).

Both speak httpx2 (the HTTP stack of mcp 2.x and openai 3.x). API errors become
`GatewayClientError(code)` with the gateway's stable code; a transport failure becomes
`gateway_unreachable`. The agent key is sent as a bearer token and never appears in an error.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable, Mapping, Sequence

import httpx2

from .result import AuthorizeResult, GatewayClientError
from .retry import DEFAULT_MAX_WAIT_S, RetryingAuthorize, retry_throttled_sync

__all__ = ["GatewayClient", "SyncGatewayClient", "grant_body", "jsonable"]


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a tool output (unknown objects, NaN and Infinity become its text)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError, RecursionError):
        return str(value)


def grant_body(objective: str, scope: Sequence[Mapping[str, Any]], ttl_s: int,
               call_budget: int | None = None, reason: str = "", ticket: str = "",
               owner: str = "", justification: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"objective": objective, "scope": [dict(s) for s in scope],
                            "ttl_s": ttl_s}
    if call_budget is not None:
        body["call_budget"] = call_budget
    for key, value in (("reason", reason), ("ticket", ticket), ("owner", owner),
                       ("justification", justification)):
        if value:
            body[key] = value
    return body


def _authorize_body(tool: str, arguments: Mapping[str, Any], grant_id: str | None,
                    call_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"tool": tool, "arguments": dict(arguments)}
    if grant_id:
        body["grant_id"] = grant_id
    if call_id:
        body["call_id"] = call_id
    return body


def _result_body(ok: bool, output: Any, error: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": ok, "output": jsonable(output)}
    if error is not None:
        body["error"] = error
    return body


def _decode(response: httpx2.Response) -> Any:
    try:
        data = response.json() if response.content else {}
    except ValueError as exc:
        raise GatewayClientError("invalid_response", status=response.status_code) from exc
    if response.status_code >= 400:
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("code"):
            raise GatewayClientError(str(err["code"]), str(err.get("message") or ""),
                                     status=response.status_code)
        raise GatewayClientError("invalid_response", status=response.status_code)
    return data


def _build(http: httpx2.Client | httpx2.AsyncClient, method: str, path: str, body: Any,
           params: Mapping[str, str] | None, invalid_code: str) -> httpx2.Request:
    """The request, its body encoded as strict JSON: a body JSON cannot hold (NaN, Infinity, an
    object) is the caller's error with a stable code, never a bare ValueError/TypeError."""
    try:
        return http.build_request(method, path, json=body, params=params)
    except (TypeError, ValueError, RecursionError) as exc:
        raise GatewayClientError(
            invalid_code, "the request body is not plain JSON (NaN, Infinity or an object "
            "JSON cannot hold)") from exc


def _headers(agent_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent_key}", "Accept": "application/json"}


class GatewayClient(RetryingAuthorize):
    """Async client. Use as `async with GatewayClient(url, key) as gw:` or call `aclose()`."""

    def __init__(self, base_url: str, agent_key: str, *, timeout: float = 30.0,
                 transport: httpx2.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._http = httpx2.AsyncClient(base_url=base_url.rstrip("/"), headers=_headers(agent_key),
                                        timeout=timeout, transport=transport)
        self._sleep = sleep

    async def __aenter__(self) -> "GatewayClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None,
                    params: Mapping[str, str] | None = None,
                    invalid_code: str = "invalid_request") -> Any:
        request = _build(self._http, method, path, body, params, invalid_code)
        try:
            response = await self._http.send(request)
        except httpx2.HTTPError as exc:
            raise GatewayClientError("gateway_unreachable") from exc
        return _decode(response)

    async def request_grant(self, objective: str, scope: Sequence[Mapping[str, Any]],
                            ttl_s: int = 900, call_budget: int | None = None, reason: str = "",
                            ticket: str = "", owner: str = "",
                            justification: str = "") -> dict[str, Any]:
        body = grant_body(objective, scope, ttl_s, call_budget, reason, ticket, owner,
                          justification)
        return await self._call("POST", "/v1/grants", body)

    async def get_grant(self, grant_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/grants/{grant_id}")

    async def list_grants(self, status: str | None = None) -> list[dict[str, Any]]:
        data = await self._call("GET", "/v1/grants", params={"status": status} if status else None)
        return list(data.get("grants", [])) if isinstance(data, dict) else list(data)

    async def grant_action(self, grant_id: str, action: str, **body: Any) -> dict[str, Any]:
        """approve | deny | revoke | renew (approve/deny need a reviewer key)."""
        return await self._call("POST", f"/v1/grants/{grant_id}/{action}", body)

    async def authorize(self, tool: str, arguments: Mapping[str, Any],
                        grant_id: str | None = None, call_id: str | None = None
                        ) -> AuthorizeResult:
        data = await self._call("POST", "/v1/authorize",
                                _authorize_body(tool, arguments, grant_id, call_id),
                                invalid_code="invalid_arguments")
        return AuthorizeResult.from_json(data)

    async def report_result(self, decision_id: str, ok: bool, output: Any,
                            error: str | None = None) -> None:
        await self._call("POST", f"/v1/decisions/{decision_id}/result",
                         _result_body(ok, output, error))

    async def decisions(self, grant_id: str) -> list[dict[str, Any]]:
        data = await self._call("GET", f"/v1/grants/{grant_id}/decisions")
        return list(data.get("decisions", []))

    async def list_approvals(self, status: str = "pending") -> list[dict[str, Any]]:
        data = await self._call("GET", "/v1/approvals", params={"status": status})
        return list(data.get("approvals", [])) if isinstance(data, dict) else list(data)

    async def approve_call(self, approval_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/approvals/{approval_id}/approve", {})

    async def deny_call(self, approval_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/approvals/{approval_id}/deny", {})


class SyncGatewayClient:
    """The same interface, blocking, for scripts and sync tool loops."""

    def __init__(self, base_url: str, agent_key: str, *, timeout: float = 30.0,
                 transport: httpx2.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._http = httpx2.Client(base_url=base_url.rstrip("/"), headers=_headers(agent_key),
                                   timeout=timeout, transport=transport)
        self._sleep = sleep

    def __enter__(self) -> "SyncGatewayClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None,
              params: Mapping[str, str] | None = None,
              invalid_code: str = "invalid_request") -> Any:
        request = _build(self._http, method, path, body, params, invalid_code)
        try:
            response = self._http.send(request)
        except httpx2.HTTPError as exc:
            raise GatewayClientError("gateway_unreachable") from exc
        return _decode(response)

    def request_grant(self, objective: str, scope: Sequence[Mapping[str, Any]],
                      ttl_s: int = 900, call_budget: int | None = None, reason: str = "",
                      ticket: str = "", owner: str = "", justification: str = "") -> dict[str, Any]:
        body = grant_body(objective, scope, ttl_s, call_budget, reason, ticket, owner,
                          justification)
        return self._call("POST", "/v1/grants", body)

    def get_grant(self, grant_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/grants/{grant_id}")

    def grant_action(self, grant_id: str, action: str, **body: Any) -> dict[str, Any]:
        return self._call("POST", f"/v1/grants/{grant_id}/{action}", body)

    def authorize(self, tool: str, arguments: Mapping[str, Any], grant_id: str | None = None,
                  call_id: str | None = None) -> AuthorizeResult:
        data = self._call("POST", "/v1/authorize",
                          _authorize_body(tool, arguments, grant_id, call_id),
                          invalid_code="invalid_arguments")
        return AuthorizeResult.from_json(data)

    def authorize_with_retry(self, tool: str, arguments: Mapping[str, Any],
                             grant_id: str | None = None, call_id: str | None = None,
                             max_wait_s: float = DEFAULT_MAX_WAIT_S) -> AuthorizeResult:
        return retry_throttled_sync(lambda: self.authorize(tool, arguments, grant_id, call_id),
                                    max_wait_s=max_wait_s, sleep=self._sleep)

    def report_result(self, decision_id: str, ok: bool, output: Any,
                      error: str | None = None) -> None:
        self._call("POST", f"/v1/decisions/{decision_id}/result", _result_body(ok, output, error))

    def decisions(self, grant_id: str) -> list[dict[str, Any]]:
        data = self._call("GET", f"/v1/grants/{grant_id}/decisions")
        return list(data.get("decisions", []))
