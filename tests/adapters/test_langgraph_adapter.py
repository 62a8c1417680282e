"""The LangGraph ToolNode interceptor and the create_agent middleware, with ChatOpenAI against
the local fake model and the real in-memory gateway (the HTTP app and the sync client for graphs
run synchronously)."""

import httpx2
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from adapter_support import IBAN_EVIL, IBAN_OK, PAYMENT_SCOPE
from adapters.client import SyncGatewayClient, SyncToolGate, ToolGate
from adapters.langgraph import JITGateMiddleware, LangGraphGate
from demos.fake_model import call, calls, say, tool_outputs

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


def _graph(node):
    graph = StateGraph(MessagesState)
    graph.add_node("tools", node)
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    return graph.compile()


def _sync_transfer(sent):
    @tool
    def transfer(iban: str, amount: int) -> str:
        """Send a bank transfer."""
        sent.append((iban, amount))
        return f"sent {amount} to {iban}"

    return transfer


def _by_id(out):
    return {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}


def test_tool_node_sync_invoke_authorizes_through_the_sync_client(http_gateway):
    # `invoke` takes LangGraph's synchronous path: the gate's sync wrapper asks the gateway
    url, agent_key, _ = http_gateway
    sent = []
    with SyncGatewayClient(url, agent_key) as gw:
        grant = gw.request_grant("pay ACME", PAYMENT_SCOPE, ttl_s=900)["grant_id"]
        gate = LangGraphGate(SyncToolGate(gw, grant), tool_names=NAMES)
        node = ToolNode([_sync_transfer(sent)], wrap_tool_call=gate.wrap_tool_call,
                        awrap_tool_call=gate.awrap_tool_call)
        msg = AIMessage(content="", tool_calls=[
            {"name": "transfer", "args": {"iban": IBAN_OK, "amount": 5}, "id": "c1"},
            {"name": "transfer", "args": {"iban": IBAN_EVIL, "amount": 4000}, "id": "c2"},
        ])
        by_id = _by_id(_graph(node).invoke({"messages": [msg]}))
        log = gw.decisions(grant)
    assert sent == [(IBAN_OK, 5)]
    assert by_id["c1"].content == f"sent 5 to {IBAN_OK}"
    assert by_id["c2"].status == "error" and "code=argument_out_of_scope" in by_id["c2"].content
    assert sorted(d["code"] for d in log) == ["allowed", "argument_out_of_scope"]
    allowed = next(d for d in log if d["code"] == "allowed")
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {agent_key}"}) as http:
        outcome = http.get(f"/v1/decisions/{allowed['decision_id']}").json()["outcome"]
    assert outcome["ok"] is True


async def test_sync_invoke_without_a_sync_client_refuses_and_runs_nothing(stage, grant):
    # the in-process gateway lives on this (blocked) loop: no honest sync path, so refuse
    sent = []
    client = stage.agent_client()
    gate = LangGraphGate(ToolGate(client, grant), tool_names=NAMES)
    msg = AIMessage(content="", tool_calls=[
        {"name": "transfer", "args": {"iban": IBAN_EVIL, "amount": 4000}, "id": "c1"}])
    out = _graph(gate.tool_node([_sync_transfer(sent)])).invoke({"messages": [msg]})
    refused = _by_id(out)["c1"]
    assert refused.status == "error" and "code=sync_unavailable" in refused.content
    assert sent == []
    assert await client.decisions(grant) == []
    # the same graph run asynchronously is authorized as before
    ok = AIMessage(content="", tool_calls=[
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": 5}, "id": "c2"}])
    out = await _graph(gate.tool_node([_sync_transfer(sent)])).ainvoke({"messages": [ok]})
    assert sent == [(IBAN_OK, 5)] and _by_id(out)["c2"].status == "success"
    assert [d["code"] for d in await client.decisions(grant)] == ["allowed"]


def test_create_agent_sync_invoke_through_the_middleware(fake_model, http_gateway):
    model, base_url = fake_model
    url, _, other_key = http_gateway
    model.script("fake", [
        calls(("transfer", {"iban": IBAN_OK, "amount": 120}),
              ("transfer", {"iban": IBAN_EVIL, "amount": 90})),
        say("one paid, one refused"),
    ])
    sent = []
    with SyncGatewayClient(url, other_key) as gw, httpx2.Client(timeout=30) as http:
        grant = gw.request_grant("pay ACME", PAYMENT_SCOPE, ttl_s=900)["grant_id"]
        chat = ChatOpenAI(model="fake", base_url=base_url, api_key="test", max_retries=0,
                          http_client=http)
        agent = create_agent(chat, [_sync_transfer(sent)], middleware=[
            JITGateMiddleware(SyncToolGate(gw, grant), tool_names=NAMES)])
        out = agent.invoke({"messages": [HumanMessage("pay the invoice")]})
        codes = sorted(d["code"] for d in gw.decisions(grant))
    assert out["messages"][-1].content == "one paid, one refused"
    assert sent == [(IBAN_OK, 120)]
    assert codes == ["allowed", "argument_out_of_scope"]


async def test_create_agent_sync_invoke_without_a_sync_client_refuses(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [call("transfer", iban=IBAN_OK, amount=120), say("stopped")])
    sent = []
    client = stage.agent_client()
    with httpx2.Client(timeout=30) as http:
        chat = ChatOpenAI(model="fake", base_url=base_url, api_key="test", max_retries=0,
                          http_client=http)
        agent = create_agent(chat, [_sync_transfer(sent)], middleware=[
            JITGateMiddleware(ToolGate(client, grant), tool_names=NAMES)])
        out = agent.invoke({"messages": [HumanMessage("pay")]})
    assert out["messages"][-1].content == "stopped"
    assert sent == []
    assert any("code=sync_unavailable" in o for o in tool_outputs(model.requests[-1]))
    assert await client.decisions(grant) == []


ONLY_ACME = [{"tool": "payments.transfer", "args": {"iban": {"in": [IBAN_OK]}}}]


async def test_authorized_arguments_are_the_ones_the_tool_receives(stage):
    # "5000" as a string does not match the review rule `amount > 1000`; the tool's schema would
    # read it as 5000, so it is refused before the gateway; 2500 (an int for a float parameter)
    # is authorized as the 2500.0 the tool receives, with the schema's default memo
    client = stage.agent_client()
    grant = (await client.request_grant("pay the supplier invoice", ONLY_ACME, 900))["grant_id"]
    got = []

    @tool
    async def transfer(iban: str, amount: float, memo: str = "invoice") -> str:
        """Send a bank transfer."""
        got.append((iban, amount, memo))
        return "sent"

    gate = LangGraphGate(ToolGate(client, grant), tool_names=NAMES)
    msg = AIMessage(content="", tool_calls=[
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": "5000"}, "id": "c1"},
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": 2500}, "id": "c2"},
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": 7, "memo": "x"}, "id": "c3"},
    ])
    node = ToolNode([transfer], awrap_tool_call=gate)  # the async hook alone, as in `ainvoke`
    by_id = _by_id(await _graph(node).ainvoke({"messages": [msg]}))
    assert by_id["c1"].status == "error" and "code=invalid_arguments" in by_id["c1"].content
    assert "amount" in by_id["c1"].content
    assert by_id["c2"].status == "error" and "code=review_required" in by_id["c2"].content
    assert got == [(IBAN_OK, 7.0, "x")]
    log = await client.decisions(grant)
    assert len(log) == 2 and {d["code"]: d["arguments"] for d in log} == {
        "review_required": {"iban": IBAN_OK, "amount": 2500.0, "memo": "invoice"},
        "allowed": {"iban": IBAN_OK, "amount": 7.0, "memo": "x"},
    }
    assert all(type(d["arguments"]["amount"]) is float for d in log)


async def test_injected_arguments_are_left_out_and_coercion_still_refused(stage, grant):
    from typing import Annotated

    from langgraph.prebuilt import InjectedState

    client = stage.agent_client()
    got = []

    @tool
    async def transfer(iban: str, amount: int, state: Annotated[dict, InjectedState]) -> str:
        """Send a bank transfer."""
        got.append((iban, amount, len(state["messages"])))
        return "sent"

    gate = LangGraphGate(ToolGate(client, grant), tool_names=NAMES)
    msg = AIMessage(content="", tool_calls=[
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": "12"}, "id": "c1"},
        {"name": "transfer", "args": {"iban": IBAN_OK, "amount": 12}, "id": "c2"},
    ])
    by_id = _by_id(await _graph(ToolNode([transfer], awrap_tool_call=gate)).ainvoke(
        {"messages": [msg]}))
    assert "code=invalid_arguments" in by_id["c1"].content
    assert by_id["c2"].content == "sent" and got == [(IBAN_OK, 12, 1)]
    assert [(d["code"], d["arguments"]) for d in await client.decisions(grant)] == [
        ("allowed", {"iban": IBAN_OK, "amount": 12})]
