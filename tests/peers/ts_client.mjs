// A real TypeScript SDK (v1) client: lists tools and calls one through JITGate over HTTP.
// usage: node ts_client.mjs URL BEARER GRANT TOOL JSON_ARGS  -> prints one JSON line
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, bearer, grant, tool, args] = process.argv.slice(2);
const headers = { Authorization: `Bearer ${bearer}` };
if (grant) headers["X-JITGate-Grant"] = grant;
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "ts-peer", version: "1.0.0" });
await client.connect(transport);
const tools = (await client.listTools()).tools.map((t) => t.name);
const result = await client.callTool({ name: tool, arguments: JSON.parse(args) });
console.log(JSON.stringify({ tools, result }));
await client.close();
