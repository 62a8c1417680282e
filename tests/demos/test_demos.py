"""Each demo runs offline as a subprocess, with a timeout, and tells its key outcomes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, timeout: float = 90.0) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_AGENTS_DISABLE_TRACING": "true",
           "OPENAI_API_KEY": "", "HTTPS_PROXY": "", "HTTP_PROXY": ""}
    proc = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("module", ["demos.payments_openai", "demos.payments_langgraph"])
def test_payments_demo(module):
    out = _run(module)
    assert "ALLOWED: payments.transfer" in out and "-> allowed\n" in out
    assert "-> review_required" in out and "-> allowed_by_approval" in out
    assert "REFUSED: payments.transfer {\"iban\": \"GB33BUKB20201555555555\"" in out
    assert "is now revoked" in out
    assert "money actually sent: [('DE89370400440532013000', 120" in out
    assert "GB33BUKB20201555555555', 4900" not in out.split("money actually sent:")[1].split("\n")[0]
    log = out.split("Decision log for grant")[1]
    assert [line.split()[1] for line in log.strip().splitlines()[2:]] == [
        "allow", "allow", "review", "allow", "deny"]


def test_coding_agent_demo():
    out = _run("demos.coding_agent")
    assert "bug fixed in the workspace: True; secret sent anywhere: False" in out
    assert "is now revoked" in out
    log = out.split("Decision log for grant")[1]
    rows = [line.split()[1:3] for line in log.strip().splitlines()[2:]]
    assert rows[:4] == [["allow", "allowed"]] * 4
    assert ["deny", "argument_out_of_scope"] in rows
    assert rows[-1] == ["deny", "grant_revoked_drift"]
