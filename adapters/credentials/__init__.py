"""Per-call credentials behind the CredentialIssuer port: signed call tokens (default), the
verifier and ASGI middleware for tool authors, secret injection, minted PostgreSQL roles."""

from .call_token import CallTokenIssuer
from .keyring import Keyring
from .replay import MemoryReplayStore, RedisReplayStore, ReplayStore
from .verifier import CallTokenVerifier, JwksSource, TokenError, VerifiedCall

__all__ = [
    "CallTokenIssuer",
    "CallTokenVerifier",
    "JwksSource",
    "Keyring",
    "MemoryReplayStore",
    "RedisReplayStore",
    "ReplayStore",
    "TokenError",
    "VerifiedCall",
]
