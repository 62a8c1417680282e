"""LangGraph / LangChain adapter: a ToolNode interceptor and create_agent middleware."""

from .gate import JITGateMiddleware, LangGraphGate

__all__ = ["JITGateMiddleware", "LangGraphGate"]
