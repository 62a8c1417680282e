"""The default credential issuer: one Ed25519-signed JWT per allowed call.

The compact JWS is built here directly on ``cryptography`` (the header is pre-encoded per key),
which is several times faster than a general JWT library; ``verifier.py`` checks it, and any
RFC 7519/8037 library (pyjwt with ``algorithms=["EdDSA"]``) can too.

Claims: ``iss``, ``sub`` (agent), ``aud`` (tool audience), ``iat``, ``exp``, ``jti`` (= the lease
id, single use), ``grant``, ``tool``, ``args`` (SHA-256 hex of the RFC 8785 canonical arguments).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.clock import Clock
from gateway.model import Credential, Lease
from gateway.ports import MintRequest

from .keyring import Keyring, b64url

__all__ = ["CallTokenIssuer", "TOKEN_TYPE", "encode_call_token"]

TOKEN_TYPE = "JWT"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def encode_call_token(keyring: Keyring, claims: dict[str, Any],
                      _headers: dict[str, bytes] | None = None) -> str:
    """Sign ``claims`` with the active key as a compact JWS (alg EdDSA)."""
    key = keyring.active
    header = None if _headers is None else _headers.get(key.kid)
    if header is None:
        header = b64url(_dumps({"alg": "EdDSA", "typ": TOKEN_TYPE, "kid": key.kid})
                        .encode("ascii")).encode("ascii")
        if _headers is not None:
            _headers[key.kid] = header
    signing_input = header + b"." + b64url(_dumps(claims).encode("ascii")).encode("ascii")
    signature = key.private_key.sign(signing_input)
    return (signing_input + b"." + b64url(signature).encode("ascii")).decode("ascii")


class CallTokenIssuer:
    """``CredentialIssuer`` of kind ``jwt``: ``Credential.value`` is the compact token."""

    kind = "jwt"

    def __init__(self, keyring: Keyring, issuer: str, clock: Clock) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self._clock = clock
        self._headers: dict[str, bytes] = {}

    def claims_for(self, request: MintRequest) -> dict[str, Any]:
        call = request.call
        iat = int(request.now)
        # floor, so the token never outlives its lease
        exp = int(request.now + float(request.ttl_s))
        if exp <= iat or request.ttl_s <= 0:
            raise ValueError("a call token needs a positive TTL of at least one second")
        return {
            "iss": self.issuer,
            "sub": call.agent.id,
            "aud": request.audience,
            "iat": iat,
            "exp": exp,
            "jti": request.lease_id,
            "grant": call.grant_id,
            "tool": call.tool,
            "args": request.args_digest,
        }

    async def mint(self, request: MintRequest) -> Credential:
        return self.mint_now(request)

    def mint_now(self, request: MintRequest) -> Credential:
        """Synchronous mint (no IO), for callers outside an event loop and benchmarks."""
        token = encode_call_token(self.keyring, self.claims_for(request), self._headers)
        return Credential(lease=request.lease(self.kind), value=token)

    async def release(self, lease: Lease, reason: str) -> None:
        """Nothing to undo: a used or revoked token is refused by the replay store/introspection."""
        return None
