"""Demo (c): the payments agent on LangGraph (`create_agent` + JITGate middleware).

Run: `python -m demos.payments_langgraph` (offline: a scripted local model, an in-memory gateway).
"""

from __future__ import annotations

import asyncio

import httpx2
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool
from langchain_openai import ChatOpenAI

from adapters.client import ToolGate
from adapters.langgraph import JITGateMiddleware
from demos.fake_model import FakeModel, serve
from demos.payments_story import OBJECTIVE, SCOPE, Bank, explain, reviewer_for, script_agent
from demos.stage import POLICY_DIR, make_stage, narrate, print_decision_log

__all__ = ["main", "run"]


async def run(base_url: str, model: FakeModel) -> int:
    stage = await make_stage([POLICY_DIR / "payments.yaml"], agent_name="payments-agent")
    agent_client = stage.agent_client()
    narrate("JITGate demo: a payments agent on LangGraph (create_agent + middleware)")
    grant = await agent_client.request_grant(OBJECTIVE, SCOPE, ttl_s=900,
                                             reason="monthly invoices")
    gid = grant["grant_id"]
    narrate(f"grant {gid} is {grant['status']}: transfers to ACME and Globex up to 5000 EUR, "
            "15 minutes")
    bank = Bank()
    tools = [
        StructuredTool.from_function(bank.read_inbox, name="read_inbox",
                                     description="Read the payments inbox"),
        StructuredTool.from_function(coroutine=bank.transfer, name="transfer",
                                     description="Send a bank transfer"),
    ]
    gate = ToolGate(agent_client, gid, on_review=reviewer_for(stage), on_decision=explain)
    middleware = JITGateMiddleware(gate, tool_names={"read_inbox": "inbox.read",
                                                     "transfer": "payments.transfer"})
    script_agent(model, "payments-demo")
    async with httpx2.AsyncClient(timeout=30) as http:
        llm = ChatOpenAI(model="payments-demo", base_url=base_url, api_key="demo-no-key",
                         max_retries=0, http_async_client=http)
        agent = create_agent(llm, tools, middleware=[middleware])
        out = await agent.ainvoke({"messages": [SystemMessage("You pay supplier invoices."),
                                                HumanMessage(OBJECTIVE)]})
    narrate(f"the model's final answer: {out['messages'][-1].content}")
    narrate(f"money actually sent: {bank.sent}")
    status = (await agent_client.get_grant(gid))["status"]
    narrate(f"grant {gid} is now {status}"
            + (" (the gateway revoked it: the IBAN came from an untrusted message)"
               if status == "revoked" else ""))
    print_decision_log(await agent_client.decisions(gid), gid)
    return 0


def main() -> int:
    model = FakeModel()
    with serve(model.app()) as url:
        return asyncio.run(run(f"{url}/v1", model))


if __name__ == "__main__":
    raise SystemExit(main())
