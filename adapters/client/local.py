"""The client interface over an in-process `Gateway`, so an adapter works with or without HTTP.

Core errors (`GatewayError`) become the same `GatewayClientError(code)` the HTTP client raises,
and results are the same plain dicts and `AuthorizeResult`s.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

from gateway.errors import GatewayError
from gateway.model import CallOutcome, Principal, ToolCall

from .http import jsonable
from .result import AuthorizeResult, GatewayClientError
from .retry import RetryingAuthorize

__all__ = ["LocalGatewayClient"]

T = TypeVar("T")


def _public(obj: Any, now: float | None) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    public = getattr(obj, "public", None)
    if public is None:
        raise GatewayClientError("invalid_response")
    try:
        return public(now) if now is not None else public()
    except TypeError:
        return public()


class LocalGatewayClient(RetryingAuthorize):
    """`GatewayClient`'s interface, acting as `principal` on an in-process `Gateway`."""

    def __init__(self, gateway: Any, principal: Principal, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.gateway = gateway
        self.principal = principal
        self._sleep = sleep

    def as_principal(self, principal: Principal) -> "LocalGatewayClient":
        """The same gateway seen by another principal (a reviewer, in tests and demos)."""
        return LocalGatewayClient(self.gateway, principal, sleep=self._sleep)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> "LocalGatewayClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _now(self) -> float | None:
        clock = getattr(self.gateway, "clock", None)
        return clock.now() if clock is not None else None

    async def _guard(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except GatewayError as exc:
            raise GatewayClientError(exc.code, exc.message, status=exc.status) from None

    async def request_grant(self, objective: str, scope: Sequence[Mapping[str, Any]],
                            ttl_s: int = 900, call_budget: int | None = None, reason: str = "",
                            ticket: str = "", owner: str = "",
                            justification: str = "") -> dict[str, Any]:
        from gateway.grants import GrantRequest  # the core module, imported when first used

        req = GrantRequest(objective=objective, scope=[dict(s) for s in scope], ttl_s=ttl_s,
                           call_budget=call_budget, reason=reason, ticket=ticket, owner=owner,
                           justification=justification)
        grant = await self._guard(self.gateway.request_grant(self.principal, req))
        return _public(grant, self._now())

    async def get_grant(self, grant_id: str) -> dict[str, Any]:
        grant = await self._guard(self.gateway.get_grant(self.principal, grant_id))
        return _public(grant, self._now())

    async def list_grants(self, status: str | None = None) -> list[dict[str, Any]]:
        grants = await self._guard(self.gateway.list_grants(self.principal, status=status))
        return [_public(g, self._now()) for g in grants]

    async def grant_action(self, grant_id: str, action: str, **body: Any) -> dict[str, Any]:
        methods = {"approve": "approve_grant", "deny": "deny_grant", "revoke": "revoke_grant",
                   "renew": "renew_grant"}
        if action not in methods:
            raise GatewayClientError("not_found", f"unknown grant action {action!r}", 404)
        method = getattr(self.gateway, methods[action])
        if action == "renew":
            from gateway.grants import RenewRequest

            grant = await self._guard(method(self.principal, grant_id, RenewRequest(**body)))
        else:
            grant = await self._guard(method(self.principal, grant_id, **body))
        return _public(grant, self._now())

    async def authorize(self, tool: str, arguments: Mapping[str, Any],
                        grant_id: str | None = None, call_id: str | None = None
                        ) -> AuthorizeResult:
        call = ToolCall(agent=self.principal, tool=tool, arguments=dict(arguments),
                        grant_id=grant_id, call_id=call_id)
        auth = await self._guard(self.gateway.authorize(call))
        return AuthorizeResult.from_json(auth.public())

    async def report_result(self, decision_id: str, ok: bool, output: Any,
                            error: str | None = None) -> None:
        outcome = CallOutcome(decision_id=decision_id, ok=ok, output=jsonable(output), error=error)
        await self._guard(self.gateway.complete(self.principal, decision_id, outcome))

    async def decisions(self, grant_id: str) -> list[dict[str, Any]]:
        return list(await self._guard(self.gateway.decisions_for_grant(self.principal, grant_id)))

    async def list_approvals(self, status: str = "pending") -> list[dict[str, Any]]:
        lister = getattr(self.gateway, "list_approvals", None)
        if lister is None:
            raise GatewayClientError("not_found", "this gateway does not list approvals", 404)
        approvals = await self._guard(lister(self.principal, status=status))
        return [_public(a, None) for a in approvals]

    async def approve_call(self, approval_id: str) -> dict[str, Any]:
        approval = await self._guard(self.gateway.approve_call(self.principal, approval_id))
        return _public(approval, None)

    async def deny_call(self, approval_id: str) -> dict[str, Any]:
        approval = await self._guard(self.gateway.deny_call(self.principal, approval_id))
        return _public(approval, None)
