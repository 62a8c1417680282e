"""JITGate as the Agents SDK agent's MCP server (the documented path for MCP tools).

The gateway itself authorizes every `tools/call` (a refusal comes back as an `is_error` tool
result the model reads), so nothing else is needed in the agent. The grant is bound with the
`X-JITGate-Grant` header (HTTP) or `JITGATE_GRANT_ID` (stdio); the agent key with a bearer token
or `JITGATE_AGENT_KEY`. The SDK's 5 s default session timeout is too short for chained
upstreams, so these helpers default to 30 s.

    async with jitgate_mcp_http(f"{url}/mcp", agent_key, grant_id) as server:
        agent = Agent(name="coder", mcp_servers=[server], model=...)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from agents.mcp import MCPServerStdio, MCPServerStreamableHttp

__all__ = ["jitgate_mcp_http", "jitgate_mcp_stdio", "GRANT_HEADER", "DEFAULT_SESSION_TIMEOUT_S"]

GRANT_HEADER = "X-JITGate-Grant"
DEFAULT_SESSION_TIMEOUT_S = 30.0


def jitgate_mcp_http(url: str, agent_key: str, grant_id: str | None = None, *,
                     name: str = "jitgate",
                     session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S,
                     extra_headers: Mapping[str, str] | None = None,
                     **server_kwargs: Any) -> MCPServerStreamableHttp:
    """The gateway's streamable HTTP endpoint (`.../mcp`) as an Agents SDK MCP server."""
    headers = {"Authorization": f"Bearer {agent_key}", **dict(extra_headers or {})}
    if grant_id:
        headers[GRANT_HEADER] = grant_id
    return MCPServerStreamableHttp(
        params={"url": url, "headers": headers, "timeout": session_timeout_s},
        name=name, client_session_timeout_seconds=session_timeout_s, **server_kwargs)


def jitgate_mcp_stdio(agent_key: str, grant_id: str | None = None, *,
                      command: str = "jitgate", args: Sequence[str] = ("mcp",),
                      env: Mapping[str, str] | None = None, name: str = "jitgate",
                      session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S,
                      **server_kwargs: Any) -> MCPServerStdio:
    """`jitgate mcp` (stdio) as an Agents SDK MCP server; a stdio child gets a minimal env."""
    child_env = {"JITGATE_AGENT_KEY": agent_key, **dict(env or {})}
    if grant_id:
        child_env["JITGATE_GRANT_ID"] = grant_id
    return MCPServerStdio(
        params={"command": command, "args": list(args), "env": child_env},
        name=name, client_session_timeout_seconds=session_timeout_s, **server_kwargs)
