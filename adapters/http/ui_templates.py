"""HTML of the reviewer UI: plain string templates where every value passes through `esc`.

Agent-controlled strings (objectives, arguments, reasons) are untrusted; nothing reaches the page
without `html.escape`. The pages carry no script: a strict CSP forbids it anyway.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "esc", "fmt_time", "fmt_json", "page", "login_page", "dashboard_body", "grant_body",
    "audit_body", "Banner",
]

Banner = tuple[str, str, str]  # (kind: "ok" | "error", code, message)

_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:#1d2330;background:#f4f6f9}header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;
align-items:center;gap:20px}header a{color:#cfd8e6;text-decoration:none}header a:hover{color:#fff}
header .brand{font-weight:700;color:#fff;margin-right:12px}header .who{margin-left:auto;color:#9fb0c8}
main{max-width:1200px;margin:0 auto;padding:18px 24px 40px}h1{font-size:20px;margin:6px 0 14px}
h2{font-size:16px;margin:26px 0 10px}section.card,div.card{background:#fff;border:1px solid #dde3ec;
border-radius:8px;padding:14px 16px;margin-bottom:12px}table{border-collapse:collapse;width:100%;
background:#fff;border:1px solid #dde3ec;border-radius:8px;overflow:hidden}th,td{text-align:left;
padding:7px 9px;border-bottom:1px solid #edf0f5;vertical-align:top}
td.t,th,.badge,code.code{white-space:nowrap}td.w{overflow-wrap:anywhere;min-width:10em}
.tw{overflow-x:auto;border-radius:8px}th{background:#f8fafc;font-weight:600;
color:#4a5568;font-size:12px;text-transform:uppercase;letter-spacing:.03em}tr:last-child td{border-bottom:0}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;
background:#f6f8fa;padding:6px 8px;border-radius:4px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e2e8f0}
.s-active,.e-allow{background:#d8f5e1;color:#17603a}.s-pending,.e-review{background:#fff1c2;color:#7a5800}
.s-denied,.s-revoked,.e-deny{background:#fde0e0;color:#9b1c1c}.s-expired,.s-exhausted{background:#e2e8f0;color:#4a5568}
.t-privileged{background:#ffe8cc;color:#8a4b00}.t-critical{background:#9b1c1c;color:#fff}
.e-throttle{background:#e0e7ff;color:#3730a3}.bg{background:#9b1c1c;color:#fff}
.banner{padding:10px 14px;border-radius:6px;margin-bottom:14px;border:1px solid}
.banner.error{background:#fdecec;border-color:#f5b5b5;color:#7f1d1d}.banner.ok{background:#e9f9ef;
border-color:#a7e3bd;color:#14532d}dl{display:grid;grid-template-columns:170px 1fr;gap:4px 12px;margin:0}
dt{color:#64748b}dd{margin:0}.objective{font-size:15px;font-weight:600;margin-bottom:8px}
form.inline{display:inline}.actions{display:flex;gap:8px;align-items:center;margin-top:10px;flex-wrap:wrap}
input[type=text],input[type=password]{padding:6px 8px;border:1px solid #cbd5e1;border-radius:5px;min-width:260px}
button{padding:6px 14px;border-radius:5px;border:1px solid #94a3b8;background:#fff;cursor:pointer;font-weight:600}
button.approve{background:#15803d;border-color:#15803d;color:#fff}button.deny,button.revoke{background:#b91c1c;
border-color:#b91c1c;color:#fff}.muted{color:#64748b}.empty{color:#64748b;font-style:italic;padding:8px 0}
.login{max-width:460px;margin:60px auto}
"""


def esc(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return html.escape(str(value), quote=True)


def fmt_time(ts: float | None) -> str:
    if not ts:
        return "—"
    return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_json(value: Any, *, compact: bool = False) -> str:
    """JSON in a <pre>; `compact` puts each top-level key of a mapping on one line."""
    if value in (None, {}, []):
        return '<span class="muted">—</span>'
    if compact and isinstance(value, Mapping):
        text = "\n".join(f"{k}: {json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)}"
                         for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    else:
        text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    return f"<pre>{html.escape(text)}</pre>"


def _badge(value: str, prefix: str = "s-") -> str:
    cls = "".join(c for c in str(value) if c.isalnum() or c == "_")
    return f'<span class="badge {prefix}{cls}">{esc(value)}</span>'


def _csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def _back(path: str) -> str:
    return f'<input type="hidden" name="back" value="{esc(path)}">'


def _table(headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<div class="empty">{esc(empty)}</div>'
    head = "".join(f"<th>{esc(h) if h else ''}</th>" for h in headers)
    return f'<div class="tw"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _banner(banner: Banner | None) -> str:
    if banner is None:
        return ""
    kind, code, message = banner
    return (f'<div class="banner {"ok" if kind == "ok" else "error"}" role="alert" data-code="{esc(code)}">'
            f"<strong><code>{esc(code)}</code></strong> — {esc(message)}</div>")


def page(title: str, body: str, *, who: str | None = None, csrf: str | None = None,
         banner: Banner | None = None) -> str:
    nav = ""
    if who is not None and csrf is not None:
        nav = (f'<a href="/ui">Dashboard</a><a href="/ui/audit">Audit</a>'
               f'<span class="who">{esc(who)}</span>'
               f'<form class="inline" method="post" action="/ui/logout">{_csrf(csrf)}'
               f'<button type="submit">Log out</button></form>')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)} · JITGate</title><style>{_CSS}</style></head><body>"
            f'<header><span class="brand">JITGate reviewer</span>{nav}</header>'
            f"<main>{_banner(banner)}{body}</main></body></html>")


def login_page(banner: Banner | None = None) -> str:
    body = ('<div class="card login"><h1>Sign in</h1>'
            '<p class="muted">Paste your reviewer or admin key. It is kept in an HttpOnly cookie '
            "for this UI only and never shown again.</p>"
            '<form method="post" action="/ui/login" autocomplete="off">'
            '<p><input type="password" name="key" id="key" placeholder="jgk_…" required></p>'
            '<button class="approve" type="submit">Sign in</button></form></div>')
    return page("Sign in", body, banner=banner)


# -- dashboard ---------------------------------------------------------------------------------


def _scope(scope: Sequence[Mapping[str, Any]]) -> str:
    items = []
    for item in scope:
        args = item.get("args") or {}
        cons = json.dumps(args, sort_keys=True, ensure_ascii=False, default=str) if args else ""
        items.append(f"<div><code><strong>{esc(item.get('tool'))}</strong></code>"
                     f"{f' <code>{esc(cons)}</code>' if cons else ''}</div>")
    return "".join(items) or "—"


def _ttl(seconds: Any) -> str:
    s = int(seconds or 0)
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")


def _pending_grant(g: Mapping[str, Any], csrf: str) -> str:
    gid = g["grant_id"]
    bg = ' <span class="badge bg">BREAK-GLASS</span>' if g.get("break_glass") else ""
    approvers = ", ".join(g.get("approvers") or []) or "none yet"
    return (f'<div class="card grant-pending" data-grant="{esc(gid)}">'
            f'<div class="objective">{esc(g.get("objective"))}{bg}</div><dl>'
            f'<dt>Grant</dt><dd><a href="/ui/grants/{esc(gid)}"><code>{esc(gid)}</code></a></dd>'
            f'<dt>Agent</dt><dd>{esc(g.get("agent_id"))}</dd>'
            f'<dt>Tier / approval</dt><dd>{_badge(g.get("tier", ""), "t-")} {esc(g.get("approval"))}</dd>'
            f'<dt>Scope</dt><dd>{_scope(g.get("scope") or [])}</dd>'
            f'<dt>Requested TTL</dt><dd>{esc(_ttl(g.get("ttl_s")))}</dd>'
            f'<dt>Reason</dt><dd>{esc(g.get("reason"))}</dd>'
            f'<dt>Ticket</dt><dd>{esc(g.get("ticket"))}</dd>'
            f'<dt>Justification</dt><dd>{esc(g.get("justification"))}</dd>'
            f'<dt>Approvals</dt><dd class="approvals">{len(g.get("approvers") or [])} / '
            f'{esc(g.get("approvals_required"))} <span class="muted">({esc(approvers)})</span></dd>'
            f"</dl>"
            f'<form class="actions" method="post" action="/ui/grants/{esc(gid)}/approve">'
            f"{_csrf(csrf)}{_back('/ui')}"
            f'<input type="text" name="note" placeholder="note or reason (optional)" maxlength="500">'
            f'<button class="approve" type="submit">Approve</button>'
            f'<button class="deny" type="submit" formaction="/ui/grants/{esc(gid)}/deny">Deny</button>'
            f"</form></div>")


def _approval_row(a: Mapping[str, Any], csrf: str) -> str:
    aid = a["approval_id"]
    grant = a.get("grant_id")
    glink = f'<a href="/ui/grants/{esc(grant)}"><code>{esc(grant)}</code></a>' if grant else "—"
    return (f'<tr class="approval" data-approval="{esc(aid)}"><td>{esc(a.get("agent_id"))}</td>'
            f"<td>{glink}</td><td><code>{esc(a.get('tool'))}</code></td>"
            f"<td class=\"w\">{fmt_json(a.get('arguments'), compact=True)}</td><td><code>{esc(a.get('decision_id'))}</code></td>"
            f"<td class=\"t\">{esc(fmt_time(a.get('expires_at')))}</td><td class=\"t\">"
            f'<form class="inline" method="post" action="/ui/approvals/{esc(aid)}/approve">'
            f"{_csrf(csrf)}{_back('/ui')}"
            f'<button class="approve" type="submit">Approve</button> '
            f'<button class="deny" type="submit" formaction="/ui/approvals/{esc(aid)}/deny">Deny</button>'
            f"</form></td></tr>")


def _grant_row(g: Mapping[str, Any]) -> str:
    gid = g["grant_id"]
    bg = ' <span class="badge bg">BG</span>' if g.get("break_glass") else ""
    return (f'<tr class="grant" data-grant="{esc(gid)}"><td><a href="/ui/grants/{esc(gid)}">'
            f"<code>{esc(gid)}</code></a></td><td>{esc(g.get('objective'))}{bg}</td>"
            f"<td>{esc(g.get('agent_id'))}</td><td>{esc(g.get('tier'))}</td>"
            f"<td>{_badge(g.get('status', ''))}</td><td class=\"t\">{esc(fmt_time(g.get('created_at')))}</td>"
            f"<td class=\"t\">{esc(fmt_time(g.get('expires_at')))}</td></tr>")


def dashboard_body(pending: Sequence[Mapping[str, Any]], approvals: Sequence[Mapping[str, Any]],
                   recent: Sequence[Mapping[str, Any]], csrf: str) -> str:
    cards = "".join(_pending_grant(g, csrf) for g in pending) or \
        '<div class="empty">No grant is waiting for approval.</div>'
    return ("<h1>Dashboard</h1>"
            f'<h2 id="pending-grants">Pending grants ({len(pending)})</h2>{cards}'
            f'<h2 id="pending-calls">Calls waiting for review ({len(approvals)})</h2>'
            + _table(["Agent", "Grant", "Tool", "Arguments (redacted)", "Decision", "Expires", ""],
                     (_approval_row(a, csrf) for a in approvals), "No call is waiting for review.")
            + '<h2 id="recent-grants">Recent grants</h2>'
            + _table(["Grant", "Objective", "Agent", "Tier", "Status", "Created", "Expires"],
                     (_grant_row(g) for g in recent), "No grants yet."))


# -- one grant ---------------------------------------------------------------------------------


def _signals(signals: Sequence[Mapping[str, Any]]) -> str:
    if not signals:
        return '<span class="muted">—</span>'
    return "".join(f"<div><code>{esc(s.get('detector'))}</code> {esc(s.get('code'))} "
                   f"(weight {esc(s.get('weight'))}){fmt_json(s.get('evidence'))}</div>"
                   for s in signals)


def _decision_row(d: Mapping[str, Any]) -> str:
    reasons = "".join(f"<div>{esc(r)}</div>" for r in d.get("reasons") or []) or "—"
    rules = ", ".join(str(r) for r in d.get("rule_ids") or [])
    return (f'<tr class="decision" data-decision="{esc(d.get("decision_id"))}">'
            f"<td class=\"t\">{esc(fmt_time(d.get('ts')))}</td><td><code>{esc(d.get('tool'))}</code></td>"
            f"<td>{_badge(d.get('effect', ''), 'e-')}</td><td><code class=\"code\">{esc(d.get('code'))}</code></td>"
            f"<td class=\"w\">{reasons}</td><td class=\"w\"><code>{esc(rules)}</code><div class=\"muted\">"
            f"policy <code>{esc(str(d.get('policy_revision') or '')[:12])}</code></div></td>"
            f"<td class=\"w\">{fmt_json(d.get('arguments'), compact=True)}</td><td class=\"w\">{_signals(d.get('signals') or [])}</td></tr>")


def _lease_row(lease: Mapping[str, Any]) -> str:
    state = "revoked" if lease.get("revoked") else "issued"
    return (f"<tr><td><code>{esc(lease.get('lease_id'))}</code></td><td><code>{esc(lease.get('tool'))}</code></td>"
            f"<td>{esc(lease.get('kind'))}</td><td>{esc(fmt_time(lease.get('issued_at')))}</td>"
            f"<td>{esc(fmt_time(lease.get('expires_at')))}</td><td>{esc(state)} "
            f"{esc(lease.get('revoked_reason') or '')}</td></tr>")


def grant_body(g: Mapping[str, Any], leases: Sequence[Mapping[str, Any]],
               decisions: Sequence[Mapping[str, Any]], csrf: str) -> str:
    gid = g["grant_id"]
    bg = ' <span class="badge bg">BREAK-GLASS</span>' if g.get("break_glass") else ""
    revoke = ""
    if g.get("status") == "active":
        revoke = (f'<form class="actions" method="post" action="/ui/grants/{esc(gid)}/revoke">'
                  f"{_csrf(csrf)}{_back(f'/ui/grants/{gid}')}"
                  f'<input type="text" name="note" placeholder="reason" maxlength="500">'
                  f'<button class="revoke" type="submit">Revoke</button></form>')
    elif g.get("status") == "pending":
        revoke = (f'<form class="actions" method="post" action="/ui/grants/{esc(gid)}/approve">'
                  f"{_csrf(csrf)}{_back(f'/ui/grants/{gid}')}"
                  f'<input type="text" name="note" placeholder="note or reason (optional)" maxlength="500">'
                  f'<button class="approve" type="submit">Approve</button>'
                  f'<button class="deny" type="submit" formaction="/ui/grants/{esc(gid)}/deny">Deny</button>'
                  f"</form>")
    fields = [
        ("Status", _badge(g.get("status", ""))), ("Agent", esc(g.get("agent_id"))),
        ("Tier / approval", f"{esc(g.get('tier'))} / {esc(g.get('approval'))}"),
        ("Scope", _scope(g.get("scope") or [])), ("Created", esc(fmt_time(g.get("created_at")))),
        ("Expires", esc(fmt_time(g.get("expires_at")))), ("TTL", esc(_ttl(g.get("ttl_s")))),
        ("Calls used / budget", f"{esc(g.get('calls_used'))} / {esc(g.get('call_budget'))}"),
        ("Owner", esc(g.get("owner"))), ("Reason", esc(g.get("reason"))),
        ("Ticket", esc(g.get("ticket"))), ("Justification", esc(g.get("justification"))),
        ("Approvers", esc(", ".join(g.get("approvers") or [])) +
         f" ({len(g.get('approvers') or [])} / {esc(g.get('approvals_required'))})"),
        ("Revoked because", esc(g.get("revoked_reason"))),
        ("Parent grant", esc(g.get("parent_grant_id"))),
        ("Policy revision", f"<code>{esc(g.get('policy_revision'))}</code>"),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in fields)
    return (f'<h1>Grant <code>{esc(gid)}</code></h1><div class="card">'
            f'<div class="objective">{esc(g.get("objective"))}{bg}</div><dl>{dl}</dl>{revoke}</div>'
            f'<h2 id="leases">Credentials (leases) ({len(leases)})</h2>'
            + _table(["Lease", "Tool", "Kind", "Issued", "Expires", "State"],
                     (_lease_row(l) for l in leases), "No credential was minted under this grant.")
            + f'<h2 id="decisions">Decision log ({len(decisions)})</h2>'
            + _table(["Time", "Tool", "Effect", "Code", "Reasons", "Rules / policy", "Arguments (redacted)",
                      "Drift signals"], (_decision_row(d) for d in decisions),
                     "No call was decided under this grant yet."))


# -- audit -------------------------------------------------------------------------------------


def _summary(rec: Mapping[str, Any]) -> str:
    data = rec.get("data") or {}
    kind = rec.get("type")
    if kind == "call.decided":
        return f"{data.get('tool')}: {data.get('effect')} ({data.get('code')})"
    if kind == "grant.requested":
        return f"{data.get('tier')} grant, {data.get('approval')}: {data.get('objective')}"
    if kind == "grant.approved":
        return (f"approval {data.get('approvals')}/{data.get('approvals_required')}, "
                f"now {data.get('status')}" + (f" — {data['note']}" if data.get("note") else ""))
    if kind in ("grant.denied", "grant.revoked"):
        return f"{data.get('code') or kind.split('.')[1]}: {data.get('reason') or '—'}"
    if kind in ("call.approved", "call.approval_denied"):
        return f"{data.get('tool')}: approval {data.get('approval_id')}"
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 160 else text[:157] + "…"


def _audit_row(r: Mapping[str, Any]) -> str:
    grant = r.get("grant_id")
    glink = f'<a href="/ui/grants/{esc(grant)}"><code>{esc(grant)}</code></a>' if grant else "—"
    return (f'<tr class="record"><td>{esc(r.get("seq"))}</td><td class="t">{esc(fmt_time(r.get("ts")))}</td>'
            f"<td><code>{esc(r.get('type'))}</code></td><td>{esc(r.get('actor'))}</td><td>{glink}</td>"
            f"<td><code>{esc(r.get('decision_id'))}</code></td><td class=\"w\">{esc(_summary(r))}</td></tr>")


def _verify(report: Mapping[str, Any] | None) -> str:
    if report is None:
        return ""
    ok = report.get("ok")
    state = "intact" if ok is True else ("not verifiable" if ok is None else "BROKEN")
    problems = "".join(f"<li>seq {esc(p.get('seq'))}: <code>{esc(p.get('code'))}</code> "
                       f"{esc(p.get('message'))}</li>" for p in report.get("problems") or [])
    details = (f"{esc(report.get('count'))} records, head seq {esc(report.get('head_seq'))}, "
               f"{esc(report.get('checkpoints'))} signed checkpoints" if ok is not None
               else esc(report.get("message")))
    return (f'<div class="banner {"ok" if ok else "error"}" id="verify-result" data-ok="{esc(ok)}">'
            f"<strong>Audit chain {state}</strong> — {details}"
            f"{f'<ul>{problems}</ul>' if problems else ''}</div>")


def audit_body(records: Sequence[Mapping[str, Any]], report: Mapping[str, Any] | None,
               older: int | None) -> str:
    more = f'<p><a href="/ui/audit?before={older}">Older records →</a></p>' if older else ""
    return ('<h1>Audit trail</h1><form method="get" action="/ui/audit" class="actions">'
            '<input type="hidden" name="verify" value="1">'
            '<button type="submit" id="verify">Verify chain</button>'
            '<span class="muted">checks every hash link and the signed checkpoints</span></form>'
            f"{_verify(report)}<h2>Recent records</h2>"
            + _table(["Seq", "Time", "Type", "Actor", "Grant", "Decision", "Summary"],
                     (_audit_row(r) for r in records), "The trail is empty.") + more)
