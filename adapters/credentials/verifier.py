"""Verifying a call token, for tool authors: one call checks everything, one error type.

    verifier = CallTokenVerifier("https://gateway.example/.well-known/jwks.json", audience="billing")
    call = await verifier.verify(token, tool="billing.refund", arguments=received_arguments)

Checks, in order: structure and ``alg``, the key (``kid`` in the JWKS, refetched once on an unknown
``kid``), the Ed25519 signature, ``iss`` (if configured), ``aud``, ``exp``/``iat`` with a small
leeway, ``tool``, the digest of the arguments actually received, the grant's revocation through
introspection (if configured), and last single use of ``jti``. Any failure raises ``TokenError``
with a stable ``code``; messages never contain the token.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.clock import Clock, SystemClock
from gateway.digest import args_digest

from .keyring import b64url_decode
from .replay import MemoryReplayStore, ReplayStore

__all__ = ["TokenError", "TOKEN_ERROR_CODES", "VerifiedCall", "JwksSource", "CallTokenVerifier",
           "ParsedToken", "parse_token"]

TOKEN_ERROR_CODES: dict[str, str] = {
    "malformed": "the token is not a well-formed call token",
    "unknown_kid": "the token was signed with a key that is not published",
    "bad_signature": "the token's signature is not valid",
    "wrong_issuer": "the token was issued by another issuer",
    "wrong_audience": "the token is for another audience",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "tool_mismatch": "the token is for another tool",
    "args_mismatch": "the token is for other arguments",
    "replayed": "the token was already used",
    "revoked": "the token's grant or lease is no longer active",
    "jwks_unavailable": "the signing keys could not be fetched",
    "introspection_unavailable": "the gateway could not be asked whether the token is active",
    "replay_unavailable": "the single-use check could not be made",
}


class TokenError(Exception):
    """Every verification failure; ``code`` is one of TOKEN_ERROR_CODES."""

    def __init__(self, code: str) -> None:
        if code not in TOKEN_ERROR_CODES:
            raise ValueError(f"unregistered token error code {code!r}")
        self.code = code
        self.message = TOKEN_ERROR_CODES[code]
        super().__init__(f"{code}: {self.message}")

    def public(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True, slots=True)
class VerifiedCall:
    """What a verified token says about the call."""

    jti: str
    agent: str
    grant: str | None
    tool: str
    audience: str
    issuer: str
    issued_at: float
    expires_at: float
    args_digest: str
    kid: str


@dataclass(frozen=True, slots=True)
class ParsedToken:
    kid: str
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def check_signature(self, key: Ed25519PublicKey) -> None:
        try:
            key.verify(self.signature, self.signing_input)
        except InvalidSignature:
            raise TokenError("bad_signature") from None


def parse_token(token: str) -> ParsedToken:
    """Split and decode a compact JWS without trusting it. Raises TokenError('malformed')."""
    try:
        if not isinstance(token, str) or len(token) > 8192:
            raise ValueError
        head, body, sig = token.split(".")
        header = json.loads(b64url_decode(head))
        claims = json.loads(b64url_decode(body))
        signature = b64url_decode(sig)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise TokenError("malformed") from None
    if (not isinstance(header, dict) or header.get("alg") != "EdDSA"
            or not isinstance(header.get("kid"), str) or "crit" in header
            or not isinstance(claims, dict) or len(signature) != 64):
        raise TokenError("malformed")
    return ParsedToken(header["kid"], claims, f"{head}.{body}".encode("ascii"), signature)


JwksProvider = Callable[[], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]


class JwksSource:
    """Public keys by ``kid``: a JWKS URL (cached, refetched on an unknown kid at most every
    ``min_refresh_s``, so a flood of made-up kids
    cannot turn into a flood of fetches), a static JWKS dict, or a callable returning one (in-process gateway)."""

    def __init__(self, source: str | Mapping[str, Any] | JwksProvider, *,
                 clock: Clock | None = None, min_refresh_s: float = 5.0,
                 max_age_s: float = 300.0, timeout_s: float = 5.0, client: Any = None) -> None:
        self._source = source
        self._clock = clock or SystemClock()
        self._min_refresh_s = min_refresh_s
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._client = client
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._retry_after = float("-inf")
        self.fetches = 0
        if isinstance(source, Mapping):
            self._keys = self._parse(source)
            self._fetched_at = float("inf")

    async def key(self, kid: str) -> Ed25519PublicKey:
        key = self._keys.get(kid)
        if key is not None and not self._stale(self._clock.now()):
            return key
        if isinstance(self._source, Mapping):
            raise TokenError("unknown_kid")
        async with self._lock:  # one fetch at a time; waiters see its result
            now = self._clock.now()
            key = self._keys.get(kid)
            if key is not None and not self._stale(now):
                return key
            if self._may_fetch(now):
                try:
                    self._keys = self._parse(await self._load())
                except Exception:
                    self._retry_after = now + self._min_refresh_s
                    if key is None:
                        raise TokenError("jwks_unavailable") from None
                    return key  # a known key stays usable when a routine refresh fails
                self._fetched_at = now
                key = self._keys.get(kid)
        if key is None:
            raise TokenError("jwks_unavailable" if self._fetched_at is None else "unknown_kid")
        return key

    def _stale(self, now: float) -> bool:
        if now < self._retry_after:
            return False
        return self._fetched_at is None or now - self._fetched_at >= self._max_age_s

    def _may_fetch(self, now: float) -> bool:
        if now < self._retry_after:
            return False
        if callable(self._source) or self._fetched_at is None:
            return True
        return now - self._fetched_at >= min(self._min_refresh_s, self._max_age_s)

    async def _load(self) -> Mapping[str, Any]:
        self.fetches += 1
        if callable(self._source):
            value = self._source()
            return await value if inspect.isawaitable(value) else value
        import httpx2

        if self._client is not None:
            response = await self._client.get(self._source, timeout=self._timeout_s)
        else:
            async with httpx2.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as c:
                response = await c.get(self._source)
        response.raise_for_status()
        return response.json()

    @staticmethod
    def _parse(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
        keys: dict[str, Ed25519PublicKey] = {}
        for jwk in jwks.get("keys", []):
            if (isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519"
                    and isinstance(jwk.get("kid"), str) and isinstance(jwk.get("x"), str)
                    and jwk.get("use", "sig") == "sig"):
                try:
                    keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
                except ValueError:
                    continue
        return keys


class CallTokenVerifier:
    """The one call tool authors make: ``await verifier.verify(token, tool=..., arguments=...)``."""

    def __init__(self, jwks: JwksSource | str | Mapping[str, Any] | JwksProvider, audience: str, *,
                 issuer: str | None = None, leeway_s: float = 5.0,
                 replay: ReplayStore | None = None, introspection_url: str | None = None,
                 introspection_auth: str | None = None, clock: Clock | None = None,
                 http_client: Any = None, timeout_s: float = 5.0) -> None:
        self._clock = clock or SystemClock()
        self.jwks = jwks if isinstance(jwks, JwksSource) else JwksSource(
            jwks, clock=self._clock, client=http_client, timeout_s=timeout_s)
        self.audience = audience
        self.issuer = issuer
        self.leeway_s = leeway_s
        self.replay = replay if replay is not None else MemoryReplayStore(self._clock)
        self._introspection_url = introspection_url
        self._introspection_auth = introspection_auth
        self._http_client = http_client
        self._timeout_s = timeout_s

    async def verify(self, token: str, *, tool: str, arguments: Mapping[str, Any] | None
                     ) -> VerifiedCall:
        parsed = parse_token(token)
        parsed.check_signature(await self.jwks.key(parsed.kid))
        call = self._check_claims(parsed, tool, arguments)
        if self._introspection_url is not None and not await self._introspect(token):
            raise TokenError("revoked")
        try:
            first = await self.replay.first_use(call.jti, call.expires_at)
        except Exception:
            raise TokenError("replay_unavailable") from None
        if not first:
            raise TokenError("replayed")
        return call

    def _check_claims(self, parsed: ParsedToken, tool: str,
                      arguments: Mapping[str, Any] | None) -> VerifiedCall:
        c = parsed.claims
        try:
            jti, sub, iss, claimed_tool, digest = (c["jti"], c["sub"], c["iss"], c["tool"],
                                                   c["args"])
            exp, iat, aud, grant = float(c["exp"]), float(c["iat"]), c["aud"], c.get("grant")
        except (KeyError, TypeError, ValueError):
            raise TokenError("malformed") from None
        if not all(isinstance(v, str) and v for v in (jti, sub, iss, claimed_tool, digest)) or (
                grant is not None and not isinstance(grant, str)):
            raise TokenError("malformed")
        if self.issuer is not None and iss != self.issuer:
            raise TokenError("wrong_issuer")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in audiences:
            raise TokenError("wrong_audience")
        now = self._clock.now()
        if now >= exp + self.leeway_s:
            raise TokenError("expired")
        if iat > now + self.leeway_s:
            raise TokenError("not_yet_valid")
        if claimed_tool != tool:
            raise TokenError("tool_mismatch")
        try:
            received = args_digest(dict(arguments) if arguments is not None else {})
        except Exception:
            raise TokenError("args_mismatch") from None
        if received != digest:
            raise TokenError("args_mismatch")
        return VerifiedCall(jti=jti, agent=sub, grant=grant, tool=claimed_tool,
                            audience=self.audience, issuer=iss, issued_at=iat, expires_at=exp,
                            args_digest=digest, kid=parsed.kid)

    async def _introspect(self, token: str) -> bool:
        import httpx2

        headers = {"Accept": "application/json"}
        if self._introspection_auth:
            headers["Authorization"] = self._introspection_auth
        try:
            if self._http_client is not None:
                r = await self._http_client.post(self._introspection_url, data={"token": token},
                                                  headers=headers, timeout=self._timeout_s)
            else:
                async with httpx2.AsyncClient(timeout=self._timeout_s,
                                              follow_redirects=False) as client:
                    r = await client.post(self._introspection_url, data={"token": token},
                                          headers=headers)
            r.raise_for_status()
            body = r.json()
        except Exception:
            raise TokenError("introspection_unavailable") from None
        return isinstance(body, dict) and body.get("active") is True
