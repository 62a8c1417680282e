"""OpenAI Agents SDK adapter: tool guardrails + approvals for function tools, and MCP servers."""

from .guard import AgentsGuard, pending_reviews
from .mcp import DEFAULT_SESSION_TIMEOUT_S, GRANT_HEADER, jitgate_mcp_http, jitgate_mcp_stdio

__all__ = [
    "AgentsGuard",
    "DEFAULT_SESSION_TIMEOUT_S",
    "GRANT_HEADER",
    "jitgate_mcp_http",
    "jitgate_mcp_stdio",
    "pending_reviews",
]
