"""An MCP upstream (raw JSON-RPC over stdio) whose tools/list answer does not conform to the
protocol (`inputSchema` is a string): the SDK client rejects it with a ValidationError."""

import json
import sys

for line in sys.stdin:
    msg = json.loads(line)
    mid, method = msg.get("id"), msg.get("method")
    if mid is None:
        continue
    if method == "initialize":
        res = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
               "serverInfo": {"name": "malformed", "version": "1"}}
    elif method == "tools/list":
        res = {"tools": [{"name": "echo", "inputSchema": "not-an-object"}]}
    elif method == "server/discover":
        print(json.dumps({"jsonrpc": "2.0", "id": mid,
                          "error": {"code": -32601, "message": "nope"}}), flush=True)
        continue
    else:
        res = {"content": [{"type": "text", "text": "hi"}]}
    print(json.dumps({"jsonrpc": "2.0", "id": mid, "result": res}), flush=True)
