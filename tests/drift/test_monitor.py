from gateway.clock import FakeClock
from gateway.drift import DriftMonitor, RetryDetector, ScopeDetector, build_monitor
from gateway.drift.detector import DriftConfig
from gateway.model import Decision, Effect, ScopeItem

from .fixtures import call, grant, policy, spec

W = spec("bank.send_money", sensitive=("recipient",))


def decision(c, effect=Effect.DENY, code="tool_not_in_scope", signals=()):
    return Decision("dec", effect, code, (), (), "rev", c.tool, c.agent.id, "d",
                    grant_id=c.grant_id, signals=tuple(signals))


def test_weights_from_policy_detector_and_code_keys():
    cfg = DriftConfig.of(policy(weights={"provenance": 0.8, "scope.tool_not_in_scope": 0.1}))
    assert cfg.weight("provenance", "untrusted_value") == 0.8
    assert cfg.weight("provenance", "designated_source_value") == 0.4
    assert cfg.weight("scope", "tool_not_in_scope") == 0.1
    assert cfg.weight("scope", "argument_out_of_scope") == 0.5
    assert DriftConfig.of(None).threshold == 1.0


async def test_scope_signals_and_score_accumulate_to_the_threshold():
    clock = FakeClock()
    mon = DriftMonitor([ScopeDetector()], clock)
    g = grant("read the docs", scope=(ScopeItem("fs.read", {"path": {"prefix": "/docs"}}),))
    mon.seed(g)
    pol = policy(threshold=1.0)
    assert await mon.assess(call("fs.read", {"path": "/docs/a"}), g, spec("fs.read"), pol) == []
    [s] = await mon.assess(call("fs.read", {"path": "/etc/passwd"}), g, spec("fs.read"), pol)
    assert (s.code, s.evidence["detail"]) == ("argument_out_of_scope", "path")
    await mon.record(call("fs.read"), decision(call("fs.read")), [s])
    [s2] = await mon.assess(call("shell.run", {"cmd": "id"}), g, spec("shell.run"), pol)
    assert s2.code == "tool_not_in_scope"
    assert mon.score(g.grant_id) + s2.weight >= pol.drift.threshold
    await mon.record(call("shell.run"), decision(call("shell.run"), code="grant_revoked_drift"), [s2])
    assert mon.revoked(g.grant_id) and len(mon.signals(g.grant_id)) == 2


async def test_score_window_lets_old_signals_lapse():
    clock = FakeClock()
    mon = DriftMonitor([ScopeDetector()], clock)
    g = grant("x", ["fs.read"])
    mon.seed(g)
    pol = policy(window_s=60)
    sig = await mon.assess(call("shell.run"), g, spec("shell.run"), pol)
    await mon.record(call("shell.run"), decision(call("shell.run")), sig)
    assert mon.score(g.grant_id) == 0.5
    clock.advance(61)
    assert mon.score(g.grant_id) == 0.0


async def test_retrying_a_denied_call_and_bursts_feed_the_score():
    clock = FakeClock()
    mon = DriftMonitor([RetryDetector(clock, burst_n=4, burst_s=10)], clock)
    g = grant("pay my rent", ["bank.send_money"])
    mon.seed(g)
    pol = policy()
    c = call("bank.send_money", {"recipient": "XX1", "amount": 5})
    assert await mon.assess(c, g, W, pol) == []
    await mon.record(c, decision(c, code="policy_deny"))
    clock.advance(1)
    [s] = await mon.assess(call("bank.send_money", {"recipient": "xx1 ", "amount": 5.0}), g, W, pol)
    assert (s.code, s.evidence["prior_denials"]) == ("repeated_denial", 1)
    for _ in range(3):
        await mon.record(c, decision(c, Effect.ALLOW, "allowed"))
    codes = {x.code for x in await mon.assess(c, g, W, pol)}
    assert codes == {"repeated_denial", "near_duplicate_burst"}


async def test_repeated_renewals_signal_once_and_renewals_keep_the_score():
    clock = FakeClock()
    mon = DriftMonitor([RetryDetector(clock, max_renewals=1), ScopeDetector()], clock)
    g = grant("x", ["fs.read"])
    mon.seed(g)
    sig = await mon.assess(call("shell.run"), g, spec("shell.run"), policy())
    await mon.record(call("shell.run"), decision(call("shell.run")), sig)
    await mon.note_renewal(g.grant_id)
    await mon.note_renewal(g.grant_id)
    renewed = grant("x", ["fs.read"], gid="grt_2", parent=g.grant_id)
    mon.seed(renewed)
    assert mon.score("grt_2") == 0.5
    c = call("fs.read", {"path": "/a"}, gid="grt_2")
    assert [s.code for s in await mon.assess(c, renewed, spec("fs.read"), policy())] == ["repeated_renewal"]
    assert await mon.assess(c, renewed, spec("fs.read"), policy()) == []


async def test_a_failing_detector_fails_closed():
    class Broken:
        name = "broken"

        async def assess(self, *a):
            raise RuntimeError("boom")

    mon = DriftMonitor([Broken()], FakeClock())
    g = grant("x")
    [s] = await mon.assess(call("fs.read"), g, spec("fs.read"), policy())
    assert s.code == "detector_unavailable"


async def test_sessions_are_bounded_and_forgettable():
    mon = build_monitor(FakeClock(), max_grants=2)
    for i in range(3):
        mon.seed(grant("x", gid=f"g{i}"))
    assert mon.session("g0") is None and mon.session("g2") is not None
    mon.forget("g2")
    assert mon.session("g2") is None and mon.score("g2") == 0.0 and mon.score(None) == 0.0
