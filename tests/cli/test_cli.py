"""The command line as a user runs it: keys, policy check, serve, demo, audit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]
JITGATE = [sys.executable, "-m", "adapters.cli"]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*JITGATE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, **kw)


def test_keys_create_prints_the_key_alone_on_the_last_line_and_stores_only_a_hash(tmp_path):
    r = run("keys", "create", "--role", "agent", "--name", "coder", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("jgk_") and " " not in key
    db = (tmp_path / "jitgate.db").read_bytes()
    secret = key.split("_", 2)[2]
    assert secret.encode() not in db
    listed = run("keys", "list", "--data-dir", str(tmp_path))
    assert "agent:coder" in listed.stdout and secret not in listed.stdout


def test_policy_check_accepts_the_library_and_reports_every_problem(tmp_path):
    lib = ROOT / "policies" / "library"
    ok = run("policy", "check", *(str(p) for p in sorted(lib.glob("*.yaml"))))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\ntools:\n  - {match: x.y, tier: astronomical}\n"
                   "rules:\n  - id: r1\n    effect: maybe\n    when: {tool: x.y}\n"
                   "  - id: r2\n    effect: deny\n    when: {args: {a: {between: 3}}}\n")
    r = run("policy", "check", str(bad))
    assert r.returncode == 1
    assert "r1" in r.stdout and "r2" in r.stdout and r.stdout.count("bad.yaml") >= 3


def test_serve_starts_on_the_embedded_default_and_answers(tmp_path):
    port = free_port()
    proc = subprocess.Popen([*JITGATE, "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except Exception:
                time.sleep(0.2)
        else:
            raise AssertionError("the gateway did not come up")
        assert (tmp_path / "d" / "jitgate.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert f"127.0.0.1:{port}" in out and "keys create" in out


def test_demo_runs_offline_and_tells_the_story(tmp_path):
    r = run("demo", "--data-dir", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for needle in ("ALLOW", "DENY", "THROTTLE", "REVIEW", "pending", "revoked", "intact"):
        assert needle in out, needle
    verify = run("audit", "verify", "--data-dir", str(tmp_path / "demo"))
    assert verify.returncode == 0 and "intact" in verify.stdout
    tail = run("audit", "tail", "--data-dir", str(tmp_path / "demo"), "-n", "5")
    assert len(tail.stdout.strip().splitlines()) == 5
    export = run("audit", "export", "--data-dir", str(tmp_path / "demo"))
    assert export.stdout.count("\n") > 10


def test_policy_test_runs_the_yaml_corpus_and_explain_says_why():
    r = run("policy", "test", str(ROOT / "tests" / "corpus"))
    assert r.returncode == 0, r.stdout[-2000:]
    assert " passed, 0 failed" in r.stdout
    why = run("policy", "explain", "--tool", "fs.read_file", "--args", '{"path": "/workspace/.env"}',
              "--scope", '[{"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace"}}}]')
    assert why.returncode == 0, why.stdout + why.stderr
    assert "secret_file" in why.stdout and "deny" in why.stdout
    bad = run("policy", "explain", "--tool", "x", "--args", "{not json")
    assert bad.returncode == 2 and "Traceback" not in bad.stdout + bad.stderr


def test_grants_commands_work_against_a_running_gateway(tmp_path):
    from tests.support.live import start_live_gateway

    live = start_live_gateway(tmp_path / "d", drift_enabled=False)
    try:
        agent = httpx2.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.keys['agent']}"})
        g = agent.post("/v1/grants", json={"objective": "fix the docs", "ttl_s": 300, "scope": [
            {"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace/docs"}}}]}).json()
        listed = run("grants", "list", "--url", live.url, "--key", live.keys["reviewer"])
        assert listed.returncode == 0 and g["grant_id"] in listed.stdout and "pending" in listed.stdout
        approved = run("grants", "approve", g["grant_id"], "--url", live.url, "--key", live.keys["reviewer"])
        assert approved.returncode == 0 and "active" in approved.stdout
        again = run("grants", "approve", g["grant_id"], "--url", live.url, "--key", live.keys["reviewer"])
        assert again.returncode == 1 and "grant_not_pending" in again.stderr
        nokey = run("grants", "list", "--url", live.url, env={**os.environ, "JITGATE_KEY": ""})
        assert nokey.returncode == 2
    finally:
        live.stop()


def test_sighup_reloads_the_policy_of_a_running_gateway(tmp_path):
    from policies.loader import default_pack_paths

    files = []
    for path in default_pack_paths():
        copy = tmp_path / path.name
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        files.append(copy)
    port = free_port()
    args = [*JITGATE, "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")]
    for f in files:
        args += ["--policy", str(f)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        deadline = time.time() + 60
        before = None
        while time.time() < deadline and before is None:
            try:
                before = httpx2.get(url, timeout=1).json()["policy_revision"]
            except Exception:
                time.sleep(0.2)
        assert before
        (tmp_path / "devtools.yaml").write_text((tmp_path / "devtools.yaml").read_text().replace(
            "description: Files, git and shell for coding agents.", "description: Changed."))
        proc.send_signal(signal.SIGHUP)
        after = before
        while time.time() < deadline and after == before:
            time.sleep(0.2)
            after = httpx2.get(url, timeout=1).json()["policy_revision"]
        assert after != before
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
