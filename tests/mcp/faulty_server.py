"""A misbehaving MCP upstream for fault injection (low-level Server, stdio).

Tools: `echo`; `slow` (sleeps `s` seconds); `boom` (answers with an MCPError carrying a secret
in its message and data); schemas the validator cannot check (`badre`: a `pattern` that is not
a regex, `badtype`: an unknown type) and one RFC 8785 cannot encode (`bigint`). The prompt and
the resource answer with the same secret-laden error. `FAULTY_MODE=hang_list`: tools/list
never answers.
"""

from __future__ import annotations

import os

import anyio
import mcp.types as t
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

SECRET = "postgresql://admin:S3CRET@db/x"
_OBJ = {"type": "object"}


def _secret_error() -> MCPError:
    return MCPError(-32099, f"db error: {SECRET}",
                    data={"traceback": f"Traceback (most recent call last): {SECRET}"})


async def list_tools(ctx: object, params: object) -> t.ListToolsResult:
    if os.environ.get("FAULTY_MODE") == "hang_list":
        await anyio.sleep(3600)
    return t.ListToolsResult(tools=[
        t.Tool(name="echo", description="Echo",
               input_schema={"type": "object", "properties": {"text": {"type": "string"}}}),
        t.Tool(name="slow", description="Sleep", input_schema=_OBJ),
        t.Tool(name="boom", description="Fail", input_schema=_OBJ),
        t.Tool(name="badre", description="bad regex", input_schema={
            "type": "object", "properties": {"p": {"type": "string", "pattern": "(unclosed"}}}),
        t.Tool(name="badtype", description="bad type", input_schema={
            "type": "object", "properties": {"p": {"type": "strang"}}}),
        t.Tool(name="bigint", description="big int", input_schema={
            "type": "object",
            "properties": {"n": {"type": "integer", "maximum": 123456789012345678901234567890}}}),
    ])


async def call_tool(ctx: object, params: t.CallToolRequestParams) -> t.CallToolResult:
    args = params.arguments or {}
    if params.name == "slow":
        await anyio.sleep(float(args.get("s", 5)))
    if params.name == "boom":
        raise _secret_error()
    return t.CallToolResult(content=[t.TextContent(type="text", text=f"{params.name} ok")])


async def list_prompts(ctx: object, params: object) -> t.ListPromptsResult:
    return t.ListPromptsResult(prompts=[t.Prompt(name="boom")])


async def get_prompt(ctx: object, params: object) -> t.GetPromptResult:
    raise _secret_error()


async def list_resources(ctx: object, params: object) -> t.ListResourcesResult:
    return t.ListResourcesResult(resources=[t.Resource(name="boom", uri="faulty://boom")])


async def read_resource(ctx: object, params: object) -> t.ReadResourceResult:
    raise _secret_error()


server = Server("faulty", on_list_tools=list_tools, on_call_tool=call_tool,
                on_list_prompts=list_prompts, on_get_prompt=get_prompt,
                on_list_resources=list_resources, on_read_resource=read_resource)


async def main() -> None:
    async with stdio_server() as (r, w):
        await server.run(r, w, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
