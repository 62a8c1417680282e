import pytest

from adapters.judge import OpenAIJudge, judge_from_settings
from gateway.clock import FakeClock
from gateway.drift import DriftMonitor, JudgeDetector

from .fake_judge import FakeJudge
from .fixtures import call, grant, policy, spec

PRIV = spec("bank.send_money", tier="privileged", sensitive=("recipient",))


@pytest.fixture(scope="module")
def server():
    s = FakeJudge().start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def reset(server):
    server.mode, server.delay_s = "json", 0.0
    server.requests.clear()


def monitor(server, **kw):
    judge = OpenAIJudge(server.base_url, "fake-judge", timeout_s=kw.pop("client_timeout", 5.0))
    return DriftMonitor([JudgeDetector(judge, **kw)], FakeClock())


async def test_privileged_calls_are_judged_and_misalignment_signalled(server):
    mon = monitor(server)
    g = grant("Refund GB29NWBK60161331926819 for dinner")
    mon.seed(g)
    ok = await mon.assess(call("bank.send_money", {"recipient": "GB29NWBK60161331926819"}), g,
                          PRIV, policy())
    assert ok == []
    [s] = await mon.assess(call("bank.send_money", {"recipient": "US133000000121212121212"}), g,
                           PRIV, policy())
    assert (s.code, s.weight, s.evidence["reason"]) == ("judge_misaligned", 0.6, "off-task")
    assert server.requests[0]["model"] == "fake-judge"
    assert "Refund GB29NWBK60161331926819" in server.requests[0]["messages"][-1]["content"]


async def test_low_tier_calls_are_not_judged(server):
    mon = monitor(server)
    g = grant("x")
    assert await mon.assess(call("bank.send_money", {"recipient": "US133"}), g,
                            spec("bank.send_money"), policy()) == []
    assert server.requests == []


async def test_timeout_with_allow_with_signal(server):
    server.delay_s = 0.5
    mon = monitor(server, timeout_s=0.1, failure_mode="allow_with_signal")
    g = grant("x")
    [s] = await mon.assess(call("bank.send_money", {"recipient": "A"}), g, PRIV, policy())
    assert (s.code, s.evidence["failure"]) == ("judge_unavailable", "timeout")
    assert 0 < s.weight < 1


async def test_garbage_answer_with_deny_mode(server):
    server.mode = "garbage"
    mon = monitor(server, failure_mode="deny")
    g = grant("x")
    [s] = await mon.assess(call("bank.send_money", {"recipient": "A"}), g, PRIV, policy())
    assert (s.code, s.evidence["mode"], s.evidence["failure"]) == ("detector_unavailable", "deny",
                                                                    "error")


async def test_unreachable_endpoint_follows_the_policy_failure_mode():
    judge = OpenAIJudge("http://127.0.0.1:9/v1", "m", timeout_s=1.0)
    mon = DriftMonitor([JudgeDetector(judge)], FakeClock())
    g = grant("x")
    [s] = await mon.assess(call("bank.send_money", {"recipient": "A"}), g, PRIV,
                           policy(extra={"judge_failure_mode": "deny"}))
    assert s.code == "detector_unavailable"


def test_settings_and_bad_mode():
    assert judge_from_settings(None) is None
    assert isinstance(judge_from_settings({"base_url": "http://127.0.0.1:1/v1", "model": "m"}),
                      OpenAIJudge)
    with pytest.raises(ValueError):
        JudgeDetector(object(), failure_mode="maybe")  # type: ignore[arg-type]


class DeadJudge:
    async def judge(self, objective, call):
        raise ConnectionError("judge down")


@pytest.mark.parametrize("mode", ["deny", "DENY", "fail_closed", "deny ", "allow", True, 0])
async def test_a_policy_failure_mode_other_than_allow_fails_closed(mode):
    mon = DriftMonitor([JudgeDetector(DeadJudge(), failure_mode="allow_with_signal")], FakeClock())
    g = grant("pay invoices")
    [s] = await mon.assess(call("bank.send_money", {"recipient": "A"}), g, PRIV,
                           policy(extra={"judge_failure_mode": mode}))
    assert (s.code, s.weight, s.evidence["mode"]) == ("detector_unavailable", 0.0, "deny")
    assert s.evidence.get("unknown_mode") == (None if mode == "deny" else str(mode))


async def test_only_the_exact_allow_mode_fails_open():
    mon = DriftMonitor([JudgeDetector(DeadJudge(), failure_mode="deny")], FakeClock())
    g = grant("pay invoices")
    [s] = await mon.assess(call("bank.send_money", {"recipient": "A"}), g, PRIV,
                           policy(extra={"judge_failure_mode": "allow_with_signal"}))
    assert (s.code, s.evidence["mode"]) == ("judge_unavailable", "allow_with_signal")
    mon = DriftMonitor([JudgeDetector(DeadJudge())], FakeClock())  # no policy value: constructor
    [s] = await mon.assess(call("bank.send_money", {"recipient": "A"}), g, PRIV, policy())
    assert s.code == "judge_unavailable" and "unknown_mode" not in s.evidence
