"""The reviewer UI at /ui: server-rendered pages over the same in-process Gateway as the API.

A reviewer (or admin) signs in with their bearer key; the key lives only in an HttpOnly,
SameSite=Strict cookie scoped to /ui and is never echoed. Every POST carries a CSRF token, the
HMAC of the key id under a secret of this process. Errors become a banner with the stable code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from gateway.errors import GatewayError
from gateway.keys import parse_key
from gateway.model import Principal, Role

from .api import ApiServices
from .ui_templates import Banner, audit_body, dashboard_body, grant_body, login_page, page

__all__ = ["ui_routes", "COOKIE_NAME", "csrf_token"]

log = logging.getLogger("jitgate.ui")

COOKIE_NAME = "jitgate_ui"
_MAX_FORM_BYTES = 16_384
_AUDIT_PAGE = 100
_RECENT_GRANTS = 50

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# Outcome banners after a redirect: a fixed table, so the query string cannot inject text.
_DONE = {
    "grant_approved": "The grant is approved and active.",
    "grant_approval_recorded": "Your approval is recorded; the grant needs another approver.",
    "grant_denied": "The grant is denied.",
    "grant_revoked": "The grant is revoked and its live credentials are ended.",
    "call_approved": "The call is approved; the agent's retry of this exact call will run once.",
    "call_denied": "The call is refused.",
}


def csrf_token(secret: bytes, bearer: str) -> str:
    """The form token of a session: HMAC of the key id (or of the token's hash for a JWT)."""
    parsed = parse_key(bearer)
    session_id = parsed[0] if parsed else hashlib.sha256(bearer.encode()).hexdigest()
    return hmac.new(secret, f"jitgate-ui-csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class _Session:
    principal: Principal
    csrf: str

    @property
    def who(self) -> str:
        p = self.principal
        return f"{p.name or p.id} ({p.role.value})"


class _FormError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        self.code, self.message, self.status = code, message, status
        super().__init__(message)


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _redirect(url: str, *, clear: bool = False) -> RedirectResponse:
    resp = RedirectResponse(url, status_code=303, headers=_HEADERS)
    if clear:
        resp.delete_cookie(COOKIE_NAME, path="/ui", httponly=True, samesite="strict")
    return resp


def _safe_back(value: str | None) -> str:
    """Only local UI paths: no scheme, no host, no `//`."""
    if not value or not value.startswith("/ui") or "//" in value or "\\" in value:
        return "/ui"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/ui"
    return parts.path or "/ui"


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise _FormError("unsupported_media_type", "send an HTML form", 415)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_FORM_BYTES:
            raise _FormError("body_too_large", "the form is too large", 413)
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items() if v}


def ui_routes(services: ApiServices, *, csrf_secret: bytes | None = None) -> list[BaseRoute]:
    """Routes of /ui. `csrf_secret` comes from the data dir (adapters.http.csrf_secret), so
    that restarts and replicas agree; without one, each process draws its own."""
    gw = services.gateway
    secret = csrf_secret or secrets.token_bytes(32)

    async def session_of(request: Request) -> _Session | None:
        key = request.cookies.get(COOKIE_NAME, "")
        if not key:
            return None
        principal = await gw.authenticate(key)
        if principal is None or principal.role is Role.AGENT:
            return None
        return _Session(principal, csrf_token(secret, key))

    def done_banner(request: Request) -> Banner | None:
        code = request.query_params.get("done", "")
        return ("ok", code, _DONE[code]) if code in _DONE else None

    # -- page renderers (shared by GETs and by failed actions) --------------------------

    async def render_dashboard(s: _Session, banner: Banner | None, status: int = 200) -> Response:
        now = gw.clock.now()
        grants = [g.public(now) for g in await gw.list_grants(s.principal)]
        grants.sort(key=lambda g: g["created_at"], reverse=True)
        # asked for on their own: newer grants of other statuses must not push one out of view
        pending = [g.public(now) for g in await gw.list_grants(s.principal, "pending")]
        pending = [g for g in pending if g["status"] == "pending"]  # settled on the way
        pending.sort(key=lambda g: g["created_at"], reverse=True)
        approvals = [a.public() for a in await gw.list_approvals(s.principal, "pending")
                     if a.expires_at > now]
        approvals.sort(key=lambda a: a["created_at"])
        body = dashboard_body(pending, approvals, grants[:_RECENT_GRANTS], s.csrf)
        return _html(page("Dashboard", body, who=s.who, csrf=s.csrf, banner=banner), status)

    async def render_grant(s: _Session, grant_id: str, banner: Banner | None,
                           status: int = 200) -> Response:
        grant = await gw.get_grant(s.principal, grant_id)
        leases = [l.public() for l in await gw.leases_for_grant(s.principal, grant_id)]
        decisions = await gw.decisions_for_grant(s.principal, grant_id)
        body = grant_body(grant.public(gw.clock.now()), leases, decisions, s.csrf)
        return _html(page(f"Grant {grant_id}", body, who=s.who, csrf=s.csrf, banner=banner), status)

    async def render_back(s: _Session, back: str, banner: Banner, status: int) -> Response:
        """Show the page the form came from, with the banner; a bare page if that fails too."""
        try:
            if back.startswith("/ui/grants/"):
                return await render_grant(s, back.removeprefix("/ui/grants/").split("/")[0], banner, status)
            return await render_dashboard(s, banner, status)
        except GatewayError:
            return _html(page("Error", '<p><a href="/ui">Back to the dashboard</a></p>',
                              who=s.who, csrf=s.csrf, banner=banner), status)

    # -- guard: every failure is a page with a code, never a stack trace ----------------

    Handler = Callable[[Request, _Session], Awaitable[Response]]

    def signed_in(fn: Handler, *, post: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            s: _Session | None = None
            try:
                s = await session_of(request)
                if s is None:
                    return _redirect("/ui/login", clear=COOKIE_NAME in request.cookies)
                if post:
                    form = await _form(request)
                    request.state.form = form
                    # bytes: compare_digest refuses non-ASCII str with a TypeError
                    sent = form.get("csrf", "").encode("utf-8", "replace")
                    if not hmac.compare_digest(sent, s.csrf.encode("ascii")):
                        raise _FormError("csrf_invalid", "the form's CSRF token is missing or wrong; "
                                         "reload the page and try again", 403)
                return await fn(request, s)
            except (GatewayError, _FormError) as exc:
                status = exc.status
                banner: Banner = ("error", exc.code, exc.message)
                if s is None:
                    return _html(login_page(banner), status)
                back = _safe_back(getattr(request.state, "form", {}).get("back")) if post else "/ui"
                if not post and request.url.path.startswith("/ui/grants/"):
                    return _html(page("Error", '<p><a href="/ui">Back to the dashboard</a></p>',
                                      who=s.who, csrf=s.csrf, banner=banner), status)
                return await render_back(s, back, banner, status)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return _html(page("Error", '<p><a href="/ui">Back to the dashboard</a></p>',
                                  banner=("error", "internal_error",
                                          "the gateway failed to handle the request")), 500)

        endpoint.__name__ = getattr(fn, "__name__", "ui")
        endpoint.__doc__ = fn.__doc__
        return endpoint

    # -- sign in / out ------------------------------------------------------------------

    async def login_form(request: Request) -> Response:
        """The reviewer sign-in form."""
        if await session_of(request) is not None:
            return _redirect("/ui")
        return _html(login_page())

    async def login(request: Request) -> Response:
        """Sign in with a reviewer or admin key."""
        try:
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
                raise _FormError("forbidden", "the sign-in form was posted from another site", 403)
            key = (await _form(request)).get("key", "").strip()
            principal = await gw.authenticate(key) if key else None
            if principal is None:
                raise _FormError("invalid_credentials", "the key is not valid", 401)
            if principal.role is Role.AGENT:
                raise _FormError("forbidden", "agent keys cannot use the reviewer UI; "
                                 "sign in with a reviewer or admin key", 403)
        except _FormError as exc:
            return _html(login_page(("error", exc.code, exc.message)), exc.status)
        except Exception:
            log.exception("sign-in failed")
            return _html(login_page(("error", "internal_error", "the sign-in failed")), 500)
        resp = _redirect("/ui")
        resp.set_cookie(COOKIE_NAME, key, path="/ui", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
        return resp

    async def logout(request: Request) -> Response:
        """Sign out: forget the key cookie."""
        return _redirect("/ui/login", clear=True)

    # -- pages --------------------------------------------------------------------------

    async def dashboard(request: Request, s: _Session) -> Response:
        """Pending grants, calls waiting for review, recent grants."""
        return await render_dashboard(s, done_banner(request))

    async def grant_page(request: Request, s: _Session) -> Response:
        """One grant: details, leases and its decision log."""
        return await render_grant(s, request.path_params["grant_id"], done_banner(request))

    async def audit_page(request: Request, s: _Session) -> Response:
        """Recent audit records, newest first, and chain verification on demand."""
        await gw.drain()
        head, _ = await gw.audit.head()
        try:
            before = int(request.query_params.get("before", head + 1))
        except ValueError:
            raise GatewayError("invalid_request", "before must be an integer") from None
        before = max(1, min(before, head + 1))
        after = max(0, before - 1 - _AUDIT_PAGE)
        records = [r.as_dict() for r in await gw.audit.read(after_seq=after, limit=before - 1 - after)]
        records = [r for r in records if r["seq"] < before]
        records.reverse()
        report: dict[str, Any] | None = None
        if request.query_params.get("verify"):
            report = (await services.verify_audit() if services.verify_audit is not None
                      else {"ok": None, "message": "verification is not available on this store"})
        body = audit_body(records, report, after + 1 if after > 0 else None)
        return _html(page("Audit", body, who=s.who, csrf=s.csrf, banner=done_banner(request)))

    # -- actions ------------------------------------------------------------------------

    async def grant_action(request: Request, s: _Session) -> Response:
        """approve | deny | revoke a grant."""
        form: dict[str, str] = request.state.form
        gid, action = request.path_params["grant_id"], request.path_params["action"]
        note = form.get("note", "").strip()[:500]
        if action == "approve":
            grant = await gw.approve_grant(s.principal, gid, note)
            done = "grant_approved" if grant.status.value == "active" else "grant_approval_recorded"
        elif action == "deny":
            await gw.deny_grant(s.principal, gid, note)
            done = "grant_denied"
        elif action == "revoke":
            await gw.revoke_grant(s.principal, gid, note or "revoked by a reviewer", code="revoked")
            done = "grant_revoked"
        else:
            raise GatewayError("not_found", "unknown action")
        return _redirect(f"{_safe_back(form.get('back'))}?done={done}")

    async def approval_action(request: Request, s: _Session) -> Response:
        """approve | deny one exact call."""
        form: dict[str, str] = request.state.form
        aid, action = request.path_params["approval_id"], request.path_params["action"]
        if action == "approve":
            await gw.approve_call(s.principal, aid)
            done = "call_approved"
        elif action == "deny":
            await gw.deny_call(s.principal, aid)
            done = "call_denied"
        else:
            raise GatewayError("not_found", "unknown action")
        return _redirect(f"{_safe_back(form.get('back'))}?done={done}")

    R = Route
    inner = [
        R("/", signed_in(dashboard), methods=["GET"]),
        R("/login", login_form, methods=["GET"]),
        R("/login", login, methods=["POST"]),
        R("/logout", logout, methods=["GET", "POST"]),
        R("/audit", signed_in(audit_page), methods=["GET"]),
        R("/grants/{grant_id}", signed_in(grant_page), methods=["GET"]),
        R("/grants/{grant_id}/{action:str}", signed_in(grant_action, post=True), methods=["POST"]),
        R("/approvals/{approval_id}/{action:str}", signed_in(approval_action, post=True),
          methods=["POST"]),
    ]
    return [R("/ui", signed_in(dashboard), methods=["GET"], include_in_schema=False),
            Mount("/ui", routes=inner)]
