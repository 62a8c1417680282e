"""What the CLI prints: agent text made inert, clear errors, and `audit verify`'s checkpoint
checks. In process (typer's CliRunner); the gateway's HTTP answers are faked at httpx2.request."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx2
import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.cli.terminal import safe
from adapters.storage.signer import Ed25519FileSigner
from adapters.storage.sqlite import open_sqlite, read_sqlite_audit
from gateway.audit import seal
from gateway.clock import FakeClock
from gateway.ports import AuditEvent

SPOOF = "read docs\r\x1b[2K\x1b[1Agrt_FAKE  active    low  agent:coder  fs.read_file  harmless"
TOOL = "fs.read_file\x1b]0;pwned\x07\x1b[2K\u202egnp.exe\u2066x\u2069\x9b31m\x7f\t\n"


def _no_raw_controls(text: str) -> None:
    for ch in text:
        code = ord(ch)
        assert not (code < 0x20 and ch != "\n") and not 0x7F <= code < 0xA0, repr(text)
        assert not 0x202A <= code <= 0x202E and not 0x2066 <= code <= 0x2069, repr(text)


def test_safe_escapes_controls_and_bidi_and_keeps_other_text():
    assert safe("a\x1b[31mb") == "a\\x1b[31mb"
    assert safe("x\ry\nz\t") == "x\\x0dy\\x0az\\x09"
    assert safe("\x7f\x85\x9b") == "\\x7f\\x85\\x9b"
    assert safe("\u202a\u202e\u2066\u2069") == "\\u202a\\u202e\\u2066\\u2069"
    assert safe("naïve café ✓ 日本 C:\\path") == "naïve café ✓ 日本 C:\\path"
    assert safe(None) == "None" and safe(5) == "5"
    _no_raw_controls(safe(SPOOF + TOOL).replace("\n", ""))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _fake_gateway(monkeypatch, response: httpx2.Response) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(httpx2, "request", lambda *a, **kw: response)


def test_grants_list_prints_agent_text_escaped(runner, monkeypatch):
    grant = {"grant_id": "grt_1", "status": "pending", "tier": "low", "agent_id": "agent:coder",
             "scope": [{"tool": TOOL}], "objective": SPOOF}
    _fake_gateway(monkeypatch, httpx2.Response(200, json={"grants": [grant]}))
    r = runner.invoke(app, ["grants", "list", "--url", "http://gw.test", "--key", "k"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1  # one grant, one row: no injected line
    _no_raw_controls(r.stdout)
    assert "\\x1b[2K" in r.stdout and "\\x0d" in r.stdout and "\\u202e" in r.stdout


def test_grants_error_message_is_escaped(runner, monkeypatch):
    body = {"error": {"code": "grant_not_pending", "message": "grant " + SPOOF}}
    _fake_gateway(monkeypatch, httpx2.Response(409, json=body))
    r = runner.invoke(app, ["grants", "approve", "grt_1", "--url", "http://gw.test", "--key", "k"])
    assert r.exit_code == 1
    assert "error 409: grant_not_pending" in r.stderr
    _no_raw_controls(r.stderr)


@pytest.mark.parametrize("status,content", [
    (502, b"<html><body>Bad gateway \x1b[2J" + b"x" * 500 + b"</body></html>"),
    (200, b"not json at all"),
    (200, b'["a", "list"]'),
])
def test_grants_answer_that_is_not_a_json_object_is_a_clear_error(runner, monkeypatch, status,
                                                                  content):
    _fake_gateway(monkeypatch, httpx2.Response(status, content=content,
                                               headers={"content-type": "text/html"}))
    r = runner.invoke(app, ["grants", "list", "--url", "http://gw.test", "--key", "k"])
    assert r.exit_code == 2
    assert r.exception is None or isinstance(r.exception, SystemExit)  # no traceback
    assert f"error {status}:" in r.stderr and "not a JSON object" in r.stderr
    assert len(r.stderr) < 300 and "x" * 100 not in r.stderr  # a short excerpt, no dump
    _no_raw_controls(r.stderr)


def _fill(data_dir: Path, n: int, every: int, close: bool = True,
          tool: str = "fs.read_file") -> None:
    async def run() -> None:
        stores = open_sqlite(data_dir, signer=Ed25519FileSigner(data_dir), checkpoint_every=every,
                             clock=FakeClock(), sync="normal")
        for i in range(n):
            await stores.audit.append(AuditEvent(
                type="call.decided", actor="agent:x", grant_id="gr_1",
                data={"i": i, "tool": tool, "effect": "deny", "code": "no_grant"}))
        if close:
            await stores.close()
        else:  # leave the tail unsigned, as a running gateway does
            stores.engine.signer = None
            await stores.close()

    asyncio.run(run())


def test_audit_tail_prints_agent_text_escaped(runner, tmp_path):
    _fill(tmp_path, 3, every=100, tool=TOOL)
    r = runner.invoke(app, ["audit", "tail", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 3
    _no_raw_controls(r.stdout)
    assert "fs.read_file\\x1b]0;pwned\\x07" in r.stdout


def _delete_checkpoints_and_rewrite(data_dir: Path, above: int, edit_seq: int) -> None:
    """The review's attack on the file: drop the checkpoints above `above`, edit one record
    after it and re-chain the records that follow."""
    records = read_sqlite_audit(data_dir)
    prev = records[edit_seq - 2].hash
    c = sqlite3.connect(data_dir / "jitgate.db", isolation_level=None)
    try:
        c.execute("DELETE FROM audit_checkpoints WHERE seq > ?", (above,))
        for r in records[edit_seq - 1:]:
            data = {**r.data, "effect": "allow"} if r.seq == edit_seq else r.data
            new = seal(AuditEvent(type=r.type, actor=r.actor, data=data, grant_id=r.grant_id,
                                  decision_id=r.decision_id), r.seq, prev, r.ts, r.event_id)
            c.execute("UPDATE audit_records SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                      (json.dumps(dict(new.data)), new.prev_hash, new.hash, r.seq))
            prev = new.hash
    finally:
        c.close()


def test_audit_verify_finds_deleted_checkpoints_behind_a_rewritten_tail(runner, tmp_path):
    _fill(tmp_path, 250, every=100)
    ok = runner.invoke(app, ["audit", "verify", "--data-dir", str(tmp_path),
                             "--checkpoint-every", "100"])
    assert ok.exit_code == 0 and "intact" in ok.stdout and "warning" not in ok.stdout
    _delete_checkpoints_and_rewrite(tmp_path, above=100, edit_seq=150)
    r = runner.invoke(app, ["audit", "verify", "--data-dir", str(tmp_path),
                            "--checkpoint-every", "100"])
    assert r.exit_code == 1, r.output
    assert "checkpoint 200: missing_checkpoint" in r.stdout and "TAMPERED" in r.stdout
    assert "warning: 150 record(s) (seq 101..250) are not covered by a signed checkpoint" in r.stdout
    as_json = runner.invoke(app, ["audit", "verify", "--data-dir", str(tmp_path), "--json",
                                  "--checkpoint-every", "100"])
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and not report["ok"] and report["uncovered"] == 150
    assert [(p["seq"], p["code"]) for p in report["problems"]] == [(200, "missing_checkpoint")]


def test_audit_verify_takes_the_interval_from_the_settings(runner, tmp_path, monkeypatch):
    _fill(tmp_path, 12, every=5)
    _delete_checkpoints_and_rewrite(tmp_path, above=5, edit_seq=7)
    monkeypatch.setenv("JITGATE_AUDIT_CHECKPOINT_EVERY", "5")
    r = runner.invoke(app, ["audit", "verify", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "checkpoint 10: missing_checkpoint" in r.stdout, r.output
    skipped = runner.invoke(app, ["audit", "verify", "--data-dir", str(tmp_path),
                                  "--checkpoint-every", "0"])
    assert skipped.exit_code == 0 and "warning: 7 record(s)" in skipped.stdout


def test_audit_verify_warns_about_an_unsigned_tail_without_failing(runner, tmp_path):
    _fill(tmp_path, 7, every=5, close=False)
    r = runner.invoke(app, ["audit", "verify", "--data-dir", str(tmp_path),
                            "--checkpoint-every", "5"])
    assert r.exit_code == 0, r.output
    assert "warning: 2 record(s) (seq 6..7) are not covered by a signed checkpoint" in r.stdout
    assert "intact" in r.stdout


def test_keys_disable_of_an_unknown_key_fails(runner, tmp_path):
    created = runner.invoke(app, ["keys", "create", "--role", "agent", "--name", "coder",
                                  "--data-dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    whole = created.stdout.strip().splitlines()[-1]
    key_id = whole.split("_")[1]
    r = runner.invoke(app, ["keys", "disable", "0123456789abcdef", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "disabled" not in r.stdout
    assert "no key 0123456789abcdef" in r.stderr
    r = runner.invoke(app, ["keys", "disable", whole, "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and whole.split("_", 2)[2] not in r.output  # the secret not echoed
    r = runner.invoke(app, ["keys", "disable", key_id, "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and f"disabled {key_id}" in r.stdout
    listed = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path)])
    assert f"{key_id}" in listed.stdout and "disabled" in listed.stdout
