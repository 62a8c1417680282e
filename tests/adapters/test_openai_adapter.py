"""The OpenAI SDK loop, real `openai` client against the local fake model, real in-memory gateway."""

import json

from openai import AsyncOpenAI

from adapters.client import ToolGate
from adapters.openai import LocalTool, ToolBox, run_chat, run_responses
from demos.fake_model import call, calls, say, tool_outputs

from adapter_support import IBAN_EVIL, IBAN_OK, TRANSFER_SCHEMA


def _toolbox(sent):
    async def transfer(iban, amount):
        sent.append((iban, amount))
        return {"status": "sent", "iban": iban, "amount": amount}

    def read_inbox():
        return f"Invoice from ACME, please pay 120 EUR to {IBAN_OK}"

    return ToolBox([
        LocalTool("transfer", transfer, "Send a bank transfer", TRANSFER_SCHEMA,
                  gateway_tool="payments.transfer"),
        LocalTool("read_inbox", read_inbox, "Read the inbox", gateway_tool="inbox.read"),
    ])


def _openai(base_url):
    return AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)


async def test_chat_loop_runs_allowed_calls_and_returns_refusals_as_tool_output(
        fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [
        call("read_inbox"),
        calls(("transfer", {"iban": IBAN_OK, "amount": 120}),
              ("transfer", {"iban": IBAN_EVIL, "amount": 90})),
        say("Paid ACME; the other transfer was refused."),
    ])
    sent = []
    client = stage.agent_client()
    run = await run_chat(_openai(base_url), "fake",
                         [{"role": "user", "content": "pay the invoice"}],
                         _toolbox(sent), ToolGate(client, grant))

    assert run.final_text == "Paid ACME; the other transfer was refused."
    assert sent == [(IBAN_OK, 120)]
    assert [(c.name, c.effect, c.code) for c in run.calls] == [
        ("read_inbox", "allow", "allowed"),
        ("transfer", "allow", "allowed"),
        ("transfer", "deny", "argument_out_of_scope"),
    ]
    # the model read the refusal as the tool's output, in the next request
    outputs = tool_outputs(model.requests[-1])
    assert any("code=argument_out_of_scope" in o for o in outputs)
    assert json.loads(outputs[1]) == {"status": "sent", "iban": IBAN_OK, "amount": 120}
    # one decision per call, reported outputs completed the allowed ones
    log = await client.decisions(grant)
    assert [d["code"] for d in log] == ["allowed", "allowed", "argument_out_of_scope"]
    tools = model.requests[0]["tools"]
    assert {t["function"]["name"] for t in tools} == {"transfer", "read_inbox"}


async def test_responses_loop_parallel_calls(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake-r", [
        calls(("transfer", {"iban": IBAN_OK, "amount": 10}),
              ("transfer", {"iban": IBAN_OK, "amount": 20}),
              ("transfer", {"iban": IBAN_OK, "amount": 9000})),
        say("done"),
    ])
    sent = []
    client = stage.agent_client()
    run = await run_responses(_openai(base_url), "fake-r", "pay", _toolbox(sent),
                              ToolGate(client, grant))
    assert run.final_text == "done"
    assert sorted(sent) == [(IBAN_OK, 10), (IBAN_OK, 20)]
    assert sorted(c.code for c in run.calls) == ["allowed", "allowed", "argument_out_of_scope"]
    body = model.requests[-1]
    outputs = [i for i in body["input"] if i.get("type") == "function_call_output"]
    calls_sent = [i for i in body["input"] if i.get("type") == "function_call"]
    assert {o["call_id"] for o in outputs} == {c["call_id"] for c in calls_sent}
    assert len(await client.decisions(grant)) == 3


async def test_review_waits_for_a_reviewer(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [call("transfer", iban=IBAN_OK, amount=2500), say("ok")])
    sent = []
    reviewer = stage.reviewer_client()
    seen = []

    async def on_review(result):
        seen.append(result.code)
        await reviewer.approve_call(result.approval_id)
        return True

    client = stage.agent_client()
    run = await run_chat(_openai(base_url), "fake", [{"role": "user", "content": "pay"}],
                         _toolbox(sent), ToolGate(client, grant, on_review=on_review))
    assert seen == ["review_required"]
    assert sent == [(IBAN_OK, 2500)]
    assert [c.code for c in run.calls] == ["allowed_by_approval"]
    assert [d["code"] for d in await client.decisions(grant)] == [
        "review_required", "allowed_by_approval"]


async def test_review_without_handler_reaches_the_model(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [call("transfer", iban=IBAN_OK, amount=2500), say("waiting")])
    sent = []
    run = await run_chat(_openai(base_url), "fake", [{"role": "user", "content": "pay"}],
                         _toolbox(sent), ToolGate(stage.agent_client(), grant))
    assert sent == []
    assert run.final_text == "waiting"
    assert "code=review_required" in run.calls[0].text
    assert "Approval id: apr_" in run.calls[0].text


async def test_bad_arguments_and_unknown_tools_do_not_run(fake_model, stage, grant):
    model, base_url = fake_model
    model.script("fake", [call("wire_money", iban=IBAN_EVIL), say("end")])
    run = await run_chat(_openai(base_url), "fake", [{"role": "user", "content": "x"}],
                         _toolbox([]), ToolGate(stage.agent_client(), grant))
    assert run.calls[0].code == "unknown_tool" and not run.calls[0].ran
    assert run.final_text == "end"


async def test_tool_error_is_reported_and_read_by_the_model(fake_model, stage, grant):
    model, base_url = fake_model

    def broken(iban, amount):
        raise RuntimeError("bank offline")

    box = ToolBox([LocalTool("transfer", broken, parameters=TRANSFER_SCHEMA,
                             gateway_tool="payments.transfer")])
    model.script("fake", [call("transfer", iban=IBAN_OK, amount=5), say("sorry")])
    client = stage.agent_client()
    run = await run_chat(_openai(base_url), "fake", [{"role": "user", "content": "x"}], box,
                         ToolGate(client, grant))
    assert run.calls[0].text == "error: RuntimeError: bank offline"
    assert run.final_text == "sorry"
    decision = await stage.gateway.get_decision(stage.agent, run.calls[0].decision_id)
    assert decision["outcome"]["ok"] is False
