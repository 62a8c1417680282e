"""OpenAI SDK adapter: the tool-calling loop (chat.completions and responses) gated by JITGate."""

from .loop import RunResult, ToolCallRecord, execute_tool_call, run_chat, run_responses
from .tools import LocalTool, ToolBox

__all__ = [
    "LocalTool",
    "RunResult",
    "ToolBox",
    "ToolCallRecord",
    "execute_tool_call",
    "run_chat",
    "run_responses",
]
