"""The Agents SDK guard with the real `openai-agents` Runner against the local fake model."""

import pytest
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


ONLY_ACME = [{"tool": "payments.transfer", "args": {"iban": {"in": [IBAN_OK]}}}]


def _agent_with(base_url, guard, tool, approvals=True):
    client = AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)
    return Agent(name="payer", instructions="Pay invoices.",
                 model=OpenAIChatCompletionsModel(model="fake", openai_client=client),
                 tools=guard.protect([tool], approvals=approvals))


@pytest.mark.parametrize("approvals", [False, True])
async def test_a_string_amount_is_refused_not_coerced(fake_model, stage, approvals):
    # "5000" does not match the review rule `amount > 1000`, but the SDK would hand the
    # function 5000: the call is refused before the gateway, and approving in the SDK alone
    # (it asks, since validation changes the JSON) does not run it either
    model, base_url = fake_model
    client = stage.agent_client()
    grant = (await client.request_grant("pay the supplier invoice", ONLY_ACME, 900))["grant_id"]
    model.script("fake", [call("transfer", iban=IBAN_OK, amount="5000"), say("end")])
    sent = []

    @function_tool
    async def transfer(iban: str, amount: int) -> str:
        """Send a bank transfer."""
        sent.append((iban, amount))
        return f"sent {amount}"

    guard = _guard(stage, grant)
    agent = _agent_with(base_url, guard, transfer, approvals)
    result = await Runner.run(agent, "pay")
    if approvals:
        reviews = pending_reviews(guard, result)
        assert [approval_id for _, approval_id in reviews] == [None]  # JITGate decided nothing
        state = result.to_state()
        state.approve(reviews[0][0])
        result = await Runner.run(agent, state)
    assert result.final_output == "end"
    assert sent == []
    refusal = [o for o in tool_outputs(model.requests[-1]) if "code=invalid_arguments" in o]
    assert len(refusal) == 1 and "amount" in refusal[0]
    assert await client.decisions(grant) == []


async def test_authorized_arguments_are_what_the_function_receives(fake_model, stage):
    # an int for a float parameter and a defaulted parameter: authorized as received
    model, base_url = fake_model
    client = stage.agent_client()
    grant = (await client.request_grant("pay the supplier invoice", ONLY_ACME, 900))["grant_id"]
    model.script("fake", [calls(("transfer", {"iban": IBAN_OK, "amount": 120}),
                                ("transfer", {"iban": IBAN_OK, "amount": 2500})), say("end")])
    got = []

    @function_tool
    async def transfer(iban: str, amount: float, memo: str = "invoice") -> str:
        """Send a bank transfer."""
        got.append((iban, amount, memo))
        return "sent"

    result = await Runner.run(_agent_with(base_url, _guard(stage, grant), transfer,
                                          approvals=False), "pay")
    assert result.final_output == "end"
    assert got == [(IBAN_OK, 120.0, "invoice")]
    log = await client.decisions(grant)
    assert len(log) == 2 and {d["code"]: d["arguments"] for d in log} == {
        "allowed": {"iban": IBAN_OK, "amount": 120.0, "memo": "invoice"},
        "review_required": {"iban": IBAN_OK, "amount": 2500.0, "memo": "invoice"},
    }
    assert all(type(d["arguments"]["amount"]) is float for d in log)


async def test_a_tool_that_raised_is_reported_as_failed(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [calls(("transfer", {"iban": IBAN_OK, "amount": 13}),
                                ("transfer", {"iban": IBAN_OK, "amount": 14})),
                          say("one failed")])
    sent = []

    @function_tool
    async def transfer(iban: str, amount: int) -> str:
        """Send a bank transfer."""
        if amount == 13:
            raise RuntimeError("bank rejected the transfer")
        sent.append((iban, amount))
        return f"sent {amount}"

    result = await Runner.run(_agent_with(base_url, _guard(stage, grant), transfer), "pay")
    assert result.final_output == "one failed" and sent == [(IBAN_OK, 14)]
    outcomes = {}
    for d in await stage.agent_client().decisions(grant):
        assert d["code"] == "allowed"
        outcome = (await stage.gateway.get_decision(stage.agent, d["decision_id"]))["outcome"]
        outcomes[d["arguments"]["amount"]] = (outcome["ok"], outcome["error"])
    assert outcomes == {13: (False, "tool_error"), 14: (True, None)}
