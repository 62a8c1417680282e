"""Clients of the JITGate API for agent code: HTTP (async and sync) and in-process, one interface."""

from .arguments import ArgumentsChanged, received_arguments
from .gate import (
    GateOutcome,
    GatewayAPI,
    ReviewHandler,
    SyncGatewayAPI,
    SyncReviewHandler,
    SyncToolGate,
    ToolGate,
    output_text,
)
from .http import GatewayClient, SyncGatewayClient
from .local import LocalGatewayClient
from .result import CLIENT_ERROR_CODES, AuthorizeResult, GatewayClientError
from .retry import DEFAULT_MAX_WAIT_S, retry_throttled, retry_throttled_sync

__all__ = [
    "ArgumentsChanged",
    "AuthorizeResult",
    "CLIENT_ERROR_CODES",
    "DEFAULT_MAX_WAIT_S",
    "GateOutcome",
    "GatewayAPI",
    "GatewayClient",
    "GatewayClientError",
    "LocalGatewayClient",
    "ReviewHandler",
    "SyncGatewayAPI",
    "SyncGatewayClient",
    "SyncReviewHandler",
    "SyncToolGate",
    "ToolGate",
    "output_text",
    "received_arguments",
    "retry_throttled",
    "retry_throttled_sync",
]
