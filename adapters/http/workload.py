"""Workload JWTs (OIDC/SPIFFE style) verified against configured issuers' public keys.

A token is accepted only if its `iss` is configured, its signature verifies with that issuer's
key, its `aud` matches, and `exp` is in the future. The principal id is `<iss>#<sub>`; the role
comes from a claim and can never exceed what the configuration allows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import jwt

from gateway.clock import Clock, SystemClock
from gateway.config import WorkloadIssuer
from gateway.model import Principal, Role

__all__ = ["WorkloadJwtVerifier"]

log = logging.getLogger("jitgate.workload")

_ROLES = {r.value: r for r in Role}


class WorkloadJwtVerifier:
    def __init__(self, issuers: Sequence[WorkloadIssuer], clock: Clock | None = None,
                 leeway_s: float = 30.0) -> None:
        self._clock = clock or SystemClock()
        self._leeway = leeway_s
        self._issuers: dict[str, tuple[WorkloadIssuer, list[Any]]] = {}
        for cfg in issuers:
            self._issuers[cfg.issuer] = (cfg, self._keys(cfg))

    @staticmethod
    def _keys(cfg: WorkloadIssuer) -> list[Any]:
        keys: list[Any] = []
        if cfg.public_key_pem:
            keys.append(cfg.public_key_pem)
        if cfg.public_key_file:
            keys.append(Path(cfg.public_key_file).read_text(encoding="utf-8"))
        if cfg.jwks_file:
            data = json.loads(Path(cfg.jwks_file).read_text(encoding="utf-8"))
            keys.extend(jwt.PyJWK(k) for k in data.get("keys", []))
        if not keys:
            raise ValueError(f"workload issuer {cfg.issuer}: no public key configured")
        return keys

    async def __call__(self, token: str) -> Principal | None:
        return self.verify(token)

    def verify(self, token: str) -> Principal | None:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        entry = self._issuers.get(str(unverified.get("iss", "")))
        if entry is None:
            return None
        cfg, keys = entry
        header_kid = jwt.get_unverified_header(token).get("kid")
        for key in keys:
            if isinstance(key, jwt.PyJWK):
                if header_kid and key.key_id and key.key_id != header_kid:
                    continue
                key = key.key
            try:
                claims = jwt.decode(
                    token, key=key, algorithms=cfg.algorithms, audience=cfg.audience,
                    issuer=cfg.issuer, leeway=self._leeway,
                    options={"require": ["exp", "iss", "aud", "sub"], "verify_iat": False,
                             "verify_exp": False, "verify_nbf": False},
                )
            except jwt.PyJWTError:
                continue
            now = self._clock.now()
            if not isinstance(claims["exp"], (int, float)) or float(claims["exp"]) + self._leeway < now:
                return None
            nbf = claims.get("nbf")
            if isinstance(nbf, (int, float)) and float(nbf) - self._leeway > now:
                return None
            role = _ROLES.get(str(claims.get(cfg.role_claim, cfg.default_role)))
            if role is None or role.value not in cfg.allowed_roles:
                log.warning("workload JWT from %s refused: role not allowed for this issuer",
                            cfg.issuer)
                return None
            attrs = claims.get(cfg.attributes_claim) or {}
            if not isinstance(attrs, dict):
                attrs = {}
            named = attrs.get("policy_role")
            if named is not None and cfg.allowed_policy_roles is not None and \
                    str(named) not in cfg.allowed_policy_roles:
                log.warning("workload JWT from %s refused: policy role not allowed for this "
                            "issuer", cfg.issuer)
                return None
            return Principal(id=f"{cfg.issuer}#{claims['sub']}", role=role,
                             name=str(claims["sub"]), attributes=dict(attrs))
        return None
