"""The Agents SDK guard with the real `openai-agents` Runner against the local fake model."""

from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from adapter_support import IBAN_EVIL, IBAN_OK
from adapters.client import ToolGate
from adapters.openai_agents import AgentsGuard, jitgate_mcp_http, jitgate_mcp_stdio, pending_reviews
from demos.fake_model import call, calls, say, tool_outputs

set_tracing_disabled(True)


def _agent(base_url, guard, sent, model="fake"):
    @function_tool
    async def transfer(iban: str, amount: int) -> str:
        """Send a bank transfer."""
        sent.append((iban, amount))
        return f"sent {amount} to {iban}"

    client = AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)
    return Agent(name="payer", instructions="Pay invoices.",
                 model=OpenAIChatCompletionsModel(model=model, openai_client=client),
                 tools=guard.protect([transfer]))


def _guard(stage, grant, **kw):
    return AgentsGuard(ToolGate(stage.agent_client(), grant, **kw),
                       tool_names={"transfer": "payments.transfer"})


async def test_guardrail_allows_and_refuses_without_ending_the_run(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [
        calls(("transfer", {"iban": IBAN_OK, "amount": 120}),
              ("transfer", {"iban": IBAN_EVIL, "amount": 90})),
        say("one paid, one refused"),
    ])
    sent = []
    result = await Runner.run(_agent(base_url, _guard(stage, grant), sent), "pay")
    assert result.final_output == "one paid, one refused"
    assert sent == [(IBAN_OK, 120)]
    outputs = tool_outputs(model.requests[-1])
    assert f"sent 120 to {IBAN_OK}" in outputs
    print(outputs)
    assert any("code=argument_out_of_scope" in o for o in outputs)
    log = await stage.agent_client().decisions(grant)
    assert sorted(d["code"] for d in log) == ["allowed", "argument_out_of_scope"]
    allowed = next(d for d in log if d["code"] == "allowed")
    outcome = (await stage.gateway.get_decision(stage.agent, allowed["decision_id"]))["outcome"]
    assert outcome["ok"] is True


async def test_review_goes_through_the_sdk_approval(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [call("transfer", iban=IBAN_OK, amount=2500), say("paid after review")])
    sent = []
    guard = _guard(stage, grant)
    agent = _agent(base_url, guard, sent)
    result = await Runner.run(agent, "pay the big one")
    reviews = pending_reviews(guard, result)
    assert len(reviews) == 1 and reviews[0][1].startswith("apr_")
    assert sent == []
    # the JITGate reviewer approves the exact call, then the SDK approval resumes the run
    await stage.reviewer_client().approve_call(reviews[0][1])
    state = result.to_state()
    state.approve(reviews[0][0])
    result = await Runner.run(agent, state)
    assert result.final_output == "paid after review"
    assert sent == [(IBAN_OK, 2500)]
    codes = [d["code"] for d in await stage.agent_client().decisions(grant)]
    assert codes == ["review_required", "allowed_by_approval"]


async def test_sdk_approval_alone_does_not_run_the_tool(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [call("transfer", iban=IBAN_OK, amount=2500), say("end")])
    sent = []
    guard = _guard(stage, grant)
    agent = _agent(base_url, guard, sent)
    result = await Runner.run(agent, "pay")
    state = result.to_state()
    state.approve(pending_reviews(guard, result)[0][0])  # no JITGate approval
    result = await Runner.run(agent, state)
    assert sent == []
    assert result.final_output == "end"
    assert any("code=approval_pending" in o for o in tool_outputs(model.requests[-1]))


def test_mcp_server_helpers_bind_key_and_grant():
    http = jitgate_mcp_http("http://127.0.0.1:1/mcp", "jg_key", "grt_1")
    assert http.params["headers"]["X-JITGate-Grant"] == "grt_1"
    assert http.params["headers"]["Authorization"] == "Bearer jg_key"
    assert http.client_session_timeout_seconds == 30.0
    stdio = jitgate_mcp_stdio("jg_key", "grt_1", command="jitgate")
    assert stdio.params.env["JITGATE_GRANT_ID"] == "grt_1"
    assert stdio.params.env["JITGATE_AGENT_KEY"] == "jg_key"
