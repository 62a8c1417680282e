"""Bearer authentication for the MCP endpoint: agent keys or workload JWTs via the Gateway.

The SDK's bearer middleware calls `verify_token`; the principal travels in the access token's
claims so handlers can rebuild it with `principal_from_access_token`. The client's token is
never forwarded upstream.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from mcp.server.auth.provider import AccessToken

from gateway.model import Principal, Role

__all__ = ["GatewayTokenVerifier", "principal_from_access_token", "PRINCIPAL_CLAIM",
           "MCP_SCOPE"]

PRINCIPAL_CLAIM = "jitgate_principal"
MCP_SCOPE = "mcp"


class _Authenticator(Protocol):
    async def authenticate(self, bearer: str) -> Principal | None: ...


class GatewayTokenVerifier:
    """`mcp.server.auth.provider.TokenVerifier` over `Gateway.authenticate`."""

    def __init__(self, gateway: _Authenticator) -> None:
        self._gateway = gateway

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            principal = await self._gateway.authenticate(token)
        except Exception:  # noqa: BLE001 - an authenticator failure is "not authenticated"
            return None
        if principal is None:
            return None
        return AccessToken(
            # only a digest of the token is kept on the request, never the token itself
            token=hashlib.sha256(token.encode()).hexdigest(),
            client_id=principal.id,
            scopes=[MCP_SCOPE],
            subject=principal.id,
            claims={PRINCIPAL_CLAIM: {"id": principal.id, "role": principal.role.value,
                                      "name": principal.name,
                                      "attributes": dict(principal.attributes)}},
        )


def principal_from_access_token(token: AccessToken | None) -> Principal | None:
    if token is None or not token.claims:
        return None
    raw: Any = token.claims.get(PRINCIPAL_CLAIM)
    if not isinstance(raw, dict):
        return None
    return Principal(id=str(raw["id"]), role=Role(raw["role"]), name=str(raw.get("name", "")),
                     attributes=dict(raw.get("attributes") or {}))
