"""The reviewer UI in a real headless Chromium against a real gateway on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
import pytest

from gateway.keys import create_key
from gateway.model import Role
from tests.support.live import start_live_gateway
from tests.support.services import service_missing

CHROMIUM = "/usr/bin/chromium"
SHOT = "/tmp/jitgate-ui.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
WRITE_DOCS = [{"tool": "fs.write_file", "args": {"path": {"path_under": "/workspace/docs"}}}]
TRANSFER = [{"tool": "payments.transfer",
             "args": {"amount": {"all": [{"gt": 0}, {"le": 10000}]}, "currency": {"in": ["EUR"]}}}]
BIG = {"amount": 5000, "currency": "EUR", "recipient_iban": "DE89370400440532013000",
       "memo": "invoice 7 secret-memo"}
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">fix <b>docs</b>'


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    gw = start_live_gateway(tmp_path_factory.mktemp("ui") / "d", drift_enabled=False)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        service_missing("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def api(live, key: str) -> httpx2.Client:
    return httpx2.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def add_key(live, role: Role, name: str, attributes: dict) -> str:
    new = create_key(role, name, live.clock, attributes=attributes)
    live.run(live.runtime.gateway.keys.add(new.record))
    return new.secret_key


def signed_in(browser, live, who: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(live.url + "/ui")
    assert page.url.endswith("/ui/login")  # not signed in yet
    page.fill("#key", live.keys.get(who, who))
    page.click("button[type=submit]")
    return ctx, page


def banner_code(page) -> str:
    return page.locator(".banner").first.get_attribute("data-code") or ""


def test_reviewer_approves_a_grant_and_a_call_then_reads_the_log(live, browser):
    agent = api(live, live.keys["agent"])
    g = agent.post("/v1/grants", json={"objective": "fix a typo in the docs", "scope": WRITE_DOCS,
                                       "ttl_s": 600, "reason": "typo report", "ticket": "DOC-12"}).json()
    assert g["status"] == "pending"

    ctx, page = signed_in(browser, live, "reviewer")
    assert page.url == live.url + "/ui"
    cookie = next(c for c in ctx.cookies() if c["name"] == "jitgate_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert live.keys["reviewer"] not in page.content()

    card = page.locator(f".grant-pending[data-grant='{g['grant_id']}']")
    assert "fix a typo in the docs" in card.inner_text()
    assert "DOC-12" in card.inner_text() and "typo report" in card.inner_text()
    assert "0 / 1" in card.locator(".approvals").inner_text()
    card.get_by_role("button", name="Approve").click()
    assert banner_code(page) == "grant_approved"
    assert agent.get(f"/v1/grants/{g['grant_id']}").json()["status"] == "active"
    call = {"grant_id": g["grant_id"], "tool": "fs.write_file",
            "arguments": {"path": "/workspace/docs/a.md", "content": "x"}}
    assert agent.post("/v1/authorize", json=call).json()["effect"] == "allow"

    # a transfer above 1000 needs a reviewer for this exact call
    payer = api(live, add_key(live, Role.AGENT, "payer", {"policy_role": "payments_agent", "team": "payments"}))
    pg = payer.post("/v1/grants", json={"objective": "pay the supplier invoices", "scope": TRANSFER,
                                        "ttl_s": 600}).json()
    page.goto(live.url + "/ui")
    page.locator(f".grant-pending[data-grant='{pg['grant_id']}']").get_by_role("button", name="Approve").click()
    assert banner_code(page) == "grant_approved"
    transfer = {"grant_id": pg["grant_id"], "tool": "payments.transfer", "arguments": BIG}
    first = payer.post("/v1/authorize", json=transfer).json()
    assert first["effect"] == "review" and first["approval_id"]

    agent.post("/v1/grants", json={"objective": "regenerate the docs index", "scope": WRITE_DOCS,
                                   "ttl_s": 300, "reason": "stale index", "ticket": "DOC-13"})
    page.goto(live.url + "/ui")
    page.screenshot(path=SHOT, full_page=True)
    assert Path(SHOT).stat().st_size > 10_000
    row = page.locator(f"tr.approval[data-approval='{first['approval_id']}']")
    text = row.inner_text()
    assert "payments.transfer" in text and first["decision_id"] in text and "DE89370400440532013000" in text
    assert "secret-memo" not in page.content()  # memo is a redacted argument
    row.get_by_role("button", name="Approve").click()
    assert banner_code(page) == "call_approved"
    retry = payer.post("/v1/authorize", json=transfer).json()
    assert (retry["effect"], retry["code"]) == ("allow", "allowed_by_approval")

    # the grant page: details, leases, and the decision log with codes and reasons
    page.goto(f"{live.url}/ui/grants/{pg['grant_id']}")
    rows = page.locator("tr.decision")
    assert rows.count() == 2
    log = page.locator("#decisions + .tw table").inner_text()
    assert page.locator("tr.decision .code").all_inner_texts() == ["large_transfer", "allowed_by_approval"]
    assert "Transfers above 1,000 are reviewed one by one" in log and "large-transfer-review" in log
    assert "approved by reviewer:rita for this exact call" in log and 'memo: "[redacted]"' in log
    assert "secret-memo" not in page.content()
    assert page.locator("#leases + .tw tbody tr").count() == 1
    if os.environ.get("UI_SHOTS"):
        page.screenshot(path="/tmp/jitgate-ui-grant.png", full_page=True)
    page.get_by_role("button", name="Revoke").click()
    assert banner_code(page) == "grant_revoked"
    assert payer.get(f"/v1/grants/{pg['grant_id']}").json()["status"] == "revoked"
    assert payer.post("/v1/authorize", json=transfer).json()["code"] == "grant_revoked"

    # the audit page and its chain verification
    page.goto(live.url + "/ui/audit")
    assert page.locator("tr.record").count() > 5
    assert "call.decided" in page.locator("table").inner_text()
    page.click("#verify")
    assert page.locator("#verify-result").get_attribute("data-ok") == "True"
    assert "intact" in page.locator("#verify-result").inner_text()
    if os.environ.get("UI_SHOTS"):
        page.screenshot(path="/tmp/jitgate-ui-audit.png")

    # an unknown grant is a banner, not a stack trace
    page.goto(live.url + "/ui/grants/grt_nope")
    assert banner_code(page) == "grant_not_found" and "Traceback" not in page.content()
    ctx.close()


def test_refusals_are_readable_and_untrusted_text_is_inert(live, browser):
    agent = api(live, live.keys["agent"])

    # an agent key cannot sign in
    ctx, page = signed_in(browser, live, "agent")
    assert page.url.endswith("/ui/login") and banner_code(page) == "forbidden"
    assert [c for c in ctx.cookies() if c["name"] == "jitgate_ui"] == []
    assert live.keys["agent"] not in page.content()
    ctx.close()
    ctx, page = signed_in(browser, live, "jgk_0000000000000000_nope")
    assert banner_code(page) == "invalid_credentials"
    ctx.close()

    # an objective written by the agent renders as text, and no script runs
    g = agent.post("/v1/grants", json={"objective": XSS, "scope": WRITE_DOCS, "ttl_s": 600}).json()
    ctx, page = signed_in(browser, live, "reviewer")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    card = page.locator(f".grant-pending[data-grant='{g['grant_id']}']")
    assert card.locator(".objective").inner_text().startswith("<script>window.__xss=1</script>")
    assert card.locator("script, img, b").count() == 0
    assert page.evaluate("window.__xss") is None
    page.goto(f"{live.url}/ui/grants/{g['grant_id']}")
    assert page.locator(".objective").inner_text().startswith("<script>")
    assert page.evaluate("window.__xss") is None and errors == []

    # a POST without the CSRF token is refused and changes nothing
    refused = ctx.request.post(f"{live.url}/ui/grants/{g['grant_id']}/approve", form={"back": "/ui"},
                               max_redirects=0)
    assert refused.status == 403 and 'data-code="csrf_invalid"' in refused.text()
    forged = ctx.request.post(f"{live.url}/ui/grants/{g['grant_id']}/approve",
                              form={"csrf": "0" * 64, "back": "/ui"}, max_redirects=0)
    assert forged.status == 403
    assert agent.get(f"/v1/grants/{g['grant_id']}").json()["status"] == "pending"

    # deny from the grant page, then approving it again is a banner with the stable code
    page.get_by_role("button", name="Deny").click()
    assert banner_code(page) == "grant_denied"
    assert agent.get(f"/v1/grants/{g['grant_id']}").json()["status"] == "denied"
    page.goto(live.url + "/ui")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    again = ctx.request.post(f"{live.url}/ui/grants/{g['grant_id']}/approve",
                             form={"csrf": csrf, "back": "/ui"}, max_redirects=0)
    assert again.status == 409 and 'data-code="grant_not_pending"' in again.text()
    assert "Traceback" not in again.text()
    ctx.close()

    # nobody approves their own grant (an admin acting as a payments agent)
    admin_key = add_key(live, Role.ADMIN, "boss", {"policy_role": "payments_agent", "team": "payments"})
    own = api(live, admin_key).post("/v1/grants", json={"objective": "pay myself", "scope": TRANSFER,
                                                        "ttl_s": 600}).json()
    assert own["status"] == "pending"
    ctx, page = signed_in(browser, live, admin_key)
    page.locator(f".grant-pending[data-grant='{own['grant_id']}']").get_by_role("button", name="Approve").click()
    assert banner_code(page) == "self_approval"
    assert "nobody approves their own grant" in page.locator(".banner").first.inner_text()
    assert agent.get(f"/v1/grants/{own['grant_id']}").status_code == 404  # (another agent's grant)
    page.get_by_role("button", name="Log out").click()
    assert page.url.endswith("/ui/login")
    page.goto(live.url + "/ui")
    assert page.url.endswith("/ui/login")
    ctx.close()
