"""Demo (b): a payments agent on the OpenAI SDK, every tool call authorized by JITGate.

Run: `python -m demos.payments_openai` (offline: a scripted local model, an in-memory gateway).
"""

from __future__ import annotations

import asyncio
import os

from openai import AsyncOpenAI

from adapters.client import ToolGate
from adapters.openai import LocalTool, ToolBox, run_chat
from demos.fake_model import FakeModel, serve
from demos.payments_story import (
    OBJECTIVE,
    SCOPE,
    Bank,
    explain,
    reviewer_for,
    script_agent,
)
from demos.stage import POLICY_DIR, make_stage, narrate, print_decision_log

__all__ = ["main", "run"]

TRANSFER = {"type": "object", "properties": {"iban": {"type": "string"},
                                             "amount": {"type": "number"}},
            "required": ["iban", "amount"]}


async def run(base_url: str, model: FakeModel) -> int:
    stage = await make_stage([POLICY_DIR / "payments.yaml"], agent_name="payments-agent")
    agent = stage.agent_client()
    narrate("JITGate demo: a payments agent on the OpenAI SDK (chat.completions)")
    grant = await agent.request_grant(OBJECTIVE, SCOPE, ttl_s=900, reason="monthly invoices")
    gid = grant["grant_id"]
    narrate(f"grant {gid} is {grant['status']}: transfers to ACME and Globex up to 5000 EUR, "
            "15 minutes")
    bank = Bank()
    tools = ToolBox([
        LocalTool("read_inbox", bank.read_inbox, "Read the payments inbox",
                  gateway_tool="inbox.read"),
        LocalTool("transfer", bank.transfer, "Send a bank transfer", TRANSFER,
                  gateway_tool="payments.transfer"),
    ])
    gate = ToolGate(agent, gid, on_review=reviewer_for(stage), on_decision=explain)
    script_agent(model, "payments-demo")
    client = AsyncOpenAI(base_url=base_url, api_key="demo-no-key", max_retries=0)
    result = await run_chat(client, "payments-demo",
                            [{"role": "system", "content": "You pay supplier invoices."},
                             {"role": "user", "content": OBJECTIVE}], tools, gate)
    await client.close()
    narrate(f"the model's final answer: {result.final_text}")
    narrate(f"money actually sent: {bank.sent}")
    status = (await agent.get_grant(gid))["status"]
    narrate(f"grant {gid} is now {status}"
            + (" (the gateway revoked it: the IBAN came from an untrusted message)"
               if status == "revoked" else ""))
    print_decision_log(await agent.decisions(gid), gid)
    return 0


def main() -> int:
    os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "true")
    model = FakeModel()
    with serve(model.app()) as url:
        return asyncio.run(run(f"{url}/v1", model))


if __name__ == "__main__":
    raise SystemExit(main())
