"""RFC 7662 token introspection for call tokens (what ``POST /v1/introspect`` answers).

A token is active only if its signature verifies against a published key, it has not expired,
its lease exists and is not revoked, its grant (if any) is still active, and it was not used.
Anything else, including a failure to find out, answers ``{"active": false}`` and nothing more.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

from gateway.clock import Clock
from gateway.model import Grant, GrantStatus
from gateway.ports import LeaseStore

from .keyring import Keyring
from .verifier import TokenError, parse_token

__all__ = ["introspect", "INACTIVE", "TOKEN_TYPE_HINT", "parse_introspection_form"]

INACTIVE: Mapping[str, Any] = {"active": False}
TOKEN_TYPE_HINT = "urn:jitgate:call-token"
# An exhausted grant has no calls left, but the token of its last call is still good.
_LIVE_GRANT = frozenset({GrantStatus.ACTIVE, GrantStatus.EXHAUSTED})


async def introspect(token: str, *, keyring: Keyring, leases: LeaseStore | None,
                     grant_lookup: Callable[[str], Awaitable[Grant | None]] | None,
                     used: Callable[[str], Awaitable[bool]] | None, clock: Clock,
                     issuer: str | None = None) -> dict[str, Any]:
    """The RFC 7662 answer for ``token``. Never raises; never echoes the token."""
    try:
        return await _introspect(token, keyring, leases, grant_lookup, used, clock, issuer)
    except Exception:  # fail closed: a store that cannot answer makes the token inactive
        return dict(INACTIVE)


async def _introspect(token: str, keyring: Keyring, leases: LeaseStore | None,
                      grant_lookup: Callable[[str], Awaitable[Grant | None]] | None,
                      used: Callable[[str], Awaitable[bool]] | None, clock: Clock,
                      issuer: str | None) -> dict[str, Any]:
    try:
        parsed = parse_token(token)
    except TokenError:
        return dict(INACTIVE)
    key = keyring.public_key(parsed.kid)
    if key is None:
        return dict(INACTIVE)
    try:
        parsed.check_signature(key)
    except TokenError:
        return dict(INACTIVE)
    c = parsed.claims
    now = clock.now()
    jti, grant_id = c.get("jti"), c.get("grant")
    exp, iat = c.get("exp"), c.get("iat")
    if (not isinstance(jti, str) or not isinstance(exp, (int, float))
            or not isinstance(iat, (int, float)) or now >= exp
            or (issuer is not None and c.get("iss") != issuer)):
        return dict(INACTIVE)
    if leases is not None:
        lease = await leases.get(jti)
        if lease is None or lease.revoked or now >= lease.expires_at:
            return dict(INACTIVE)
    if grant_id is not None:
        if grant_lookup is None:
            return dict(INACTIVE)
        grant = await grant_lookup(grant_id)
        if grant is None or grant.effective_status(now) not in _LIVE_GRANT:
            return dict(INACTIVE)
    if used is not None and await used(jti):
        return dict(INACTIVE)
    return {
        "active": True,
        "token_type": TOKEN_TYPE_HINT,
        "iss": c.get("iss"),
        "sub": c.get("sub"),
        "aud": c.get("aud"),
        "iat": iat,
        "exp": exp,
        "jti": jti,
        "grant": grant_id,
        "tool": c.get("tool"),
        "args": c.get("args"),
    }


def parse_introspection_form(body: bytes) -> str | None:
    """The ``token`` parameter of an ``application/x-www-form-urlencoded`` request body."""
    from urllib.parse import parse_qs

    try:
        values = parse_qs(body.decode("utf-8"), strict_parsing=False).get("token")
    except UnicodeDecodeError:
        return None
    return values[0] if values and len(values) == 1 else None
