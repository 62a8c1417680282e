"""Several issuers for one call under one lease: e.g. a call token for the tool plus the
upstream's own injected secret (a streamable-HTTP MCP upstream that checks both).

The first issuer is primary: its ``value`` is the credential's value. The lease is the primary's,
relabelled with the chain's ``kind`` (default: the primary's), so the core routes ``release`` on
revocation or completion back to the chain, which releases every member. The others add
forwarding material (``headers`` and ``env`` are merged; later issuers win on a
clash). If any mint fails, what was already minted is released and the error propagates, so the
pipeline denies ``credential_unavailable``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.model import Credential, Lease
from gateway.ports import CredentialIssuer, MintRequest

__all__ = ["IssuerChain"]


class IssuerChain:
    def __init__(self, primary: CredentialIssuer, *others: CredentialIssuer,
                 kind: str | None = None) -> None:
        self.issuers = (primary, *others)
        self.kind = kind or primary.kind

    async def mint(self, request: MintRequest) -> Credential:
        minted: list[tuple[CredentialIssuer, Credential]] = []
        try:
            for issuer in self.issuers:
                minted.append((issuer, await issuer.mint(request)))
        except BaseException:
            for issuer, cred in minted:
                try:
                    await issuer.release(cred.lease, "mint_failed")
                except Exception:
                    pass  # the sweeper (or the lease's TTL) ends it
            raise
        first = minted[0][1]
        forward: dict[str, Any] = {}
        for _, cred in minted:
            for key, value in cred.forward.items():
                if isinstance(value, dict) and isinstance(forward.get(key), dict):
                    forward[key] = {**forward[key], **value}
                else:
                    forward[key] = value
        lease = first.lease if first.lease.kind == self.kind else replace(first.lease,
                                                                              kind=self.kind)
        return Credential(lease=lease, value=first.value, forward=forward)

    async def release(self, lease: Lease, reason: str) -> None:
        errors: list[Exception] = []
        for issuer in self.issuers:
            try:
                await issuer.release(lease, reason)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
