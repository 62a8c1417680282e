"""The LangGraph ToolNode interceptor and the create_agent middleware, with ChatOpenAI against
the local fake model and the real in-memory gateway."""

import httpx2
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from adapter_support import IBAN_EVIL, IBAN_OK
from adapters.client import ToolGate
from adapters.langgraph import JITGateMiddleware, LangGraphGate
from demos.fake_model import calls, say, tool_outputs

NAMES = {"transfer": "payments.transfer"}


def _transfer(sent):
    @tool
    async def transfer(iban: str, amount: int) -> str:
        """Send a bank transfer."""
        sent.append((iban, amount))
        return f"sent {amount} to {iban}"

    return transfer


def _chat(base_url):
    # a client per test: langchain-openai caches its default one across event loops
    return ChatOpenAI(model="fake", base_url=base_url, api_key="test", max_retries=0,
                      http_async_client=httpx2.AsyncClient(timeout=30))


async def test_create_agent_middleware(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [
        calls(("transfer", {"iban": IBAN_OK, "amount": 120}),
              ("transfer", {"iban": IBAN_EVIL, "amount": 90})),
        say("one paid, one refused"),
    ])
    sent = []
    client = stage.agent_client()
    agent = create_agent(_chat(base_url), [_transfer(sent)],
                         middleware=[JITGateMiddleware(ToolGate(client, grant), tool_names=NAMES)])
    out = await agent.ainvoke({"messages": [HumanMessage("pay the invoice")]})
    assert out["messages"][-1].content == "one paid, one refused"
    assert sent == [(IBAN_OK, 120)]
    tool_msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert sorted(m.status for m in tool_msgs) == ["error", "success"]
    assert any("code=argument_out_of_scope" in o for o in tool_outputs(model.requests[-1]))
    log = await client.decisions(grant)
    assert sorted(d["code"] for d in log) == ["allowed", "argument_out_of_scope"]
    allowed = next(d for d in log if d["code"] == "allowed")
    outcome = (await stage.gateway.get_decision(stage.agent, allowed["decision_id"]))["outcome"]
    assert outcome["ok"] is True


async def test_tool_node_interceptor(stage, grant):
    sent = []
    client = stage.agent_client()
    node = ToolNode([_transfer(sent)],
                    awrap_tool_call=LangGraphGate(ToolGate(client, grant), tool_names=NAMES))
    from langchain_core.messages import AIMessage

    msg = AIMessage(content="", tool_calls=[
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": 5}, "id": "c1"},
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": 2500}, "id": "c2"},
    ])
    graph = StateGraph(MessagesState)
    graph.add_node("tools", node)
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    out = await graph.compile().ainvoke({"messages": [msg]})
    by_id = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert by_id["c1"].content == f"sent 5 to {IBAN_OK}"
    assert by_id["c2"].status == "error" and "code=review_required" in by_id["c2"].content
    assert sent == [(IBAN_OK, 5)]
    assert sorted(d["code"] for d in await client.decisions(grant)) == [
        "allowed", "review_required"]


async def test_drift_revokes_the_grant_and_the_graph_goes_on(fake_model, drift_stage):
    model, base_url = fake_model
    client = drift_stage.agent_client()
    from adapter_support import PAYMENT_SCOPE

    grant = (await client.request_grant("pay ACME's invoice", PAYMENT_SCOPE, 900))["grant_id"]
    # three attempts to pay an account outside the grant: the scope strikes add up to revocation
    model.script("fake", [
        calls(("transfer", {"iban": IBAN_EVIL, "amount": 90})),
        calls(("transfer", {"iban": IBAN_EVIL, "amount": 91})),
        calls(("transfer", {"iban": IBAN_EVIL, "amount": 92})),
        calls(("transfer", {"iban": IBAN_OK, "amount": 10})),
        say("stopped"),
    ])
    sent = []
    agent = create_agent(_chat(base_url), [_transfer(sent)],
                         middleware=[JITGateMiddleware(ToolGate(client, grant), tool_names=NAMES)])
    out = await agent.ainvoke({"messages": [HumanMessage("pay")]})
    assert out["messages"][-1].content == "stopped"
    assert sent == []
    codes = [d["code"] for d in await client.decisions(grant)]
    assert codes[-1] in ("grant_revoked_drift", "grant_revoked")
    assert (await client.get_grant(grant))["status"] == "revoked"
