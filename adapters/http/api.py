"""The HTTP API routes (ARCHITECTURE §4) over one Gateway.

Callers authenticate with `Authorization: Bearer <agent key | workload JWT>`; an agent sees and
acts on its own grants only. Every error is `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError
from gateway.grants import GrantRequest, RenewRequest
from gateway.model import ApprovalStatus, CallOutcome, GrantStatus, Principal, Role, ToolCall
from gateway.pipeline import Gateway

from .errors import BodyError, guarded, read_body, read_bytes
from .json_response import JSONResponse
from .schemas import (
    AuthorizeBody,
    CallBody,
    GrantBody,
    IntrospectBody,
    NoteBody,
    RenewBody,
    ResultBody,
)

__all__ = ["ApiServices", "api_routes"]


@dataclass
class ApiServices:
    gateway: Gateway
    max_body_bytes: int = 1_048_576
    jwks: Callable[[], dict] | None = None
    introspect: Callable[[str], Awaitable[dict]] | None = None
    verify_audit: Callable[[], Awaitable[dict]] | None = None
    http_tools: dict[str, Callable[..., Awaitable[Any]]] = field(default_factory=dict)
    public_url: str = ""
    # (admin, tool) -> new fingerprint: accept the definition an upstream serves now
    repin: Callable[[Principal, str], Awaitable[str]] | None = None
    # admin -> the new policy revision: reload the configured policy files (atomic, audited)
    reload_policy: Callable[[Principal], Awaitable[str]] | None = None
    # the web UI's CSRF secret (adapters.http.csrf_secret); None: one per process
    csrf_secret: bytes | None = None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise GatewayError("unauthenticated", "send Authorization: Bearer <agent key or JWT>")
    return value.strip()


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GatewayError("invalid_request", f"query parameter {name} must be an integer") from None
    if not lo <= value <= hi:
        raise GatewayError("invalid_request", f"query parameter {name} must be in [{lo}, {hi}]")
    return value


def _choice_param(request: Request, name: str, default: str | None,
                  allowed: frozenset[str]) -> str | None:
    raw = request.query_params.get(name, default)
    if raw is not None and raw not in allowed:
        raise GatewayError("invalid_request",
                           f"query parameter {name} must be one of {', '.join(sorted(allowed))}")
    return raw


_GRANT_STATES = frozenset(s.value for s in GrantStatus)
_APPROVAL_STATES = frozenset({*(s.value for s in ApprovalStatus), "all"})


def api_routes(svc: ApiServices) -> list[Route]:
    gw = svc.gateway

    async def principal_of(request: Request) -> Principal:
        principal = await gw.authenticate(_bearer(request))
        if principal is None:
            raise GatewayError("invalid_credentials", "the key or token is not valid")
        return principal

    async def body(request: Request, model: Any, allow_empty: bool = False) -> Any:
        return await read_body(request, model, svc.max_body_bytes, allow_empty=allow_empty)

    def grant_json(grant: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(grant.public(gw.clock.now()), status_code=status)

    # -- health & discovery -----------------------------------------------------------

    async def healthz(request: Request) -> Response:
        """Liveness and the policy revision in force."""
        return JSONResponse({"status": "ok", "policy_revision": gw.policy.revision})

    async def jwks(request: Request) -> Response:
        """Public keys of the call tokens (JWKS)."""
        return JSONResponse(svc.jwks() if svc.jwks else {"keys": []},
                            headers={"Cache-Control": "public, max-age=60"})

    async def policy(request: Request) -> Response:
        """The policy in force: revision, tiers, tools, roles, rule ids."""
        await principal_of(request)
        return JSONResponse(gw.policy.describe())

    async def policy_reload(request: Request) -> Response:
        """Admin: reload the configured policy files; an invalid set keeps the one in force."""
        principal = await principal_of(request)
        await body(request, NoteBody, allow_empty=True)
        if principal.role is not Role.ADMIN:
            raise GatewayError("forbidden", "only an admin reloads the policy")
        if svc.reload_policy is None:
            raise GatewayError("not_found", "policy reload is not available here")
        previous = gw.policy.revision
        revision = await svc.reload_policy(principal)
        return JSONResponse({"revision": revision, "previous": previous,
                             "changed": revision != previous})

    # -- grants -----------------------------------------------------------------------

    async def create_grant(request: Request) -> Response:
        """Request a grant: objective, scope, TTL. Policy picks the approval path."""
        principal = await principal_of(request)
        b: GrantBody = await body(request, GrantBody)
        grant = await gw.request_grant(principal, GrantRequest(
            objective=b.objective, scope=[s.model_dump() for s in b.scope], ttl_s=b.ttl_s,
            call_budget=b.call_budget, reason=b.reason, ticket=b.ticket, owner=b.owner,
            justification=b.justification))
        return grant_json(grant, 201)

    async def list_grants(request: Request) -> Response:
        """Grants the caller may see (an agent: its own)."""
        principal = await principal_of(request)
        status = _choice_param(request, "status", None, _GRANT_STATES)
        grants = await gw.list_grants(principal, status)
        now = gw.clock.now()
        return JSONResponse({"grants": [g.public(now) for g in grants]})

    async def get_grant(request: Request) -> Response:
        """One grant."""
        principal = await principal_of(request)
        return grant_json(await gw.get_grant(principal, request.path_params["grant_id"]))

    async def grant_action(request: Request) -> Response:
        """approve | deny | revoke | renew a grant."""
        principal = await principal_of(request)
        gid, action = request.path_params["grant_id"], request.path_params["action"]
        if action == "renew":
            r: RenewBody = await body(request, RenewBody, allow_empty=True)
            grant = await gw.renew_grant(principal, gid, RenewRequest(
                ttl_s=r.ttl_s, scope=[s.model_dump() for s in r.scope] if r.scope else None,
                justification=r.justification))
            return grant_json(grant, 201 if grant.grant_id != gid else 200)
        n: NoteBody = await body(request, NoteBody, allow_empty=True)
        if action == "approve":
            grant = await gw.approve_grant(principal, gid, n.note)
        elif action == "deny":
            grant = await gw.deny_grant(principal, gid, n.reason or n.note)
        elif action == "revoke":
            grant = await gw.revoke_grant(principal, gid, n.reason or n.note or "revoked by request",
                                          code="revoked")
        else:
            raise GatewayError("not_found", f"unknown action {action}")
        return grant_json(grant)

    async def grant_leases(request: Request) -> Response:
        """Credentials (leases) minted under a grant."""
        principal = await principal_of(request)
        leases = await gw.leases_for_grant(principal, request.path_params["grant_id"])
        return JSONResponse({"leases": [l.public() for l in leases]})

    async def grant_decisions(request: Request) -> Response:
        """The decision log of a grant: every call decided under it, with reasons."""
        principal = await principal_of(request)
        rows = await gw.decisions_for_grant(principal, request.path_params["grant_id"])
        return JSONResponse({"decisions": rows})

    # -- the per-call decision --------------------------------------------------------

    async def authorize(request: Request) -> Response:
        """Authorize one tool call; an allowed call gets a per-call credential."""
        principal = await principal_of(request)
        b: AuthorizeBody = await body(request, AuthorizeBody)
        auth = await gw.authorize(ToolCall(agent=principal, tool=b.tool, arguments=b.arguments,
                                           grant_id=b.grant_id, call_id=b.call_id,
                                           session_id=b.session_id))
        return JSONResponse(auth.public())

    async def get_decision(request: Request) -> Response:
        """A decision with its reasons and, once reported, its outcome."""
        principal = await principal_of(request)
        return JSONResponse(await gw.get_decision(principal, request.path_params["decision_id"]))

    async def report_result(request: Request) -> Response:
        """Report what the tool returned (audit and drift detectors)."""
        principal = await principal_of(request)
        b: ResultBody = await body(request, ResultBody)
        did = request.path_params["decision_id"]
        await gw.complete(principal, did, CallOutcome(did, ok=b.ok, output=b.output, error=b.error))
        return JSONResponse({"recorded": True, "decision_id": did})

    async def call_tool(request: Request) -> Response:
        """Authorize and forward a call to a configured HTTP tool."""
        principal = await principal_of(request)
        b: CallBody = await body(request, CallBody)
        forward = svc.http_tools.get(b.tool)
        if forward is None:
            raise GatewayError("not_found", f"no HTTP tool {b.tool}")
        result = await gw.run(ToolCall(agent=principal, tool=b.tool, arguments=b.arguments,
                                       grant_id=b.grant_id, call_id=b.call_id), forward)
        out = result.decision.public()
        if result.decision.allowed:
            out["result"] = result.output
            if result.error:
                out["error"] = result.error
        return JSONResponse(out)

    # -- per-call approvals -----------------------------------------------------------

    async def list_approvals(request: Request) -> Response:
        """Per-call approvals waiting for a reviewer."""
        principal = await principal_of(request)
        status = _choice_param(request, "status", "pending", _APPROVAL_STATES)
        rows = await gw.list_approvals(principal, None if status == "all" else status)
        return JSONResponse({"approvals": [a.public() for a in rows]})

    async def approval_action(request: Request) -> Response:
        """approve | deny one exact call."""
        principal = await principal_of(request)
        aid, action = request.path_params["approval_id"], request.path_params["action"]
        await body(request, NoteBody, allow_empty=True)
        if action == "approve":
            approval = await gw.approve_call(principal, aid)
        elif action == "deny":
            approval = await gw.deny_call(principal, aid)
        else:
            raise GatewayError("not_found", f"unknown action {action}")
        return JSONResponse(approval.public())

    # -- tools ------------------------------------------------------------------------

    async def repin_tool(request: Request) -> Response:
        """Admin: accept a changed upstream tool definition (re-pin it)."""
        principal = await principal_of(request)
        await body(request, NoteBody, allow_empty=True)
        if principal.role is not Role.ADMIN:
            raise GatewayError("forbidden", "only an admin re-pins a tool")
        tool = request.path_params["tool"]
        if svc.repin is None:
            raise GatewayError("not_found", "no upstream tools are configured")
        try:
            fingerprint = await svc.repin(principal, tool)
        except LookupError:
            raise GatewayError("not_found", f"no upstream serves {tool}") from None
        return JSONResponse({"tool": tool, "fingerprint": fingerprint, "pinned": True})

    # -- audit ------------------------------------------------------------------------

    async def audit(request: Request) -> Response:
        """Audit records after a sequence number (reviewers and admins)."""
        principal = await principal_of(request)
        if principal.role is Role.AGENT:
            raise GatewayError("forbidden", "the audit trail is for reviewers and admins")
        await gw.drain()  # read your writes: outcomes still being recorded land first
        after = _int_param(request, "after_seq", 0, 0, 2**62)
        limit = _int_param(request, "limit", 100, 1, 1000)
        records = await gw.audit.read(after_seq=after, limit=limit,
                                      grant_id=request.query_params.get("grant_id"),
                                      decision_id=request.query_params.get("decision_id"))
        return JSONResponse({"records": [r.as_dict() for r in records]})

    async def audit_verify(request: Request) -> Response:
        """Verify the hash chain and the signed checkpoints."""
        principal = await principal_of(request)
        if principal.role is Role.AGENT:
            raise GatewayError("forbidden", "the audit trail is for reviewers and admins")
        if svc.verify_audit is None:
            raise GatewayError("not_found", "verification is not available on this store")
        report = await svc.verify_audit()
        return JSONResponse(report, status_code=200)

    # -- credentials ------------------------------------------------------------------

    async def introspect(request: Request) -> Response:
        """RFC 7662 token introspection for call tokens."""
        await principal_of(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            raw = await read_bytes(request, svc.max_body_bytes)  # the limit, while streaming
            token = (parse_qs(raw.decode("utf-8", "replace")).get("token") or [""])[0]
            if not token:
                raise BodyError("invalid_request", "token is required", 422)
        else:
            token = (await body(request, IntrospectBody)).token
        if svc.introspect is None:
            return JSONResponse({"active": False})
        return JSONResponse(await svc.introspect(token))

    R = Route
    return [
        R("/v1/authorize", guarded(authorize), methods=["POST"]),  # the hot path: matched first
        R("/healthz", guarded(healthz), methods=["GET"]),
        R("/.well-known/jwks.json", guarded(jwks), methods=["GET"]),
        R("/v1/policy", guarded(policy), methods=["GET"]),
        R("/v1/policy/reload", guarded(policy_reload), methods=["POST"]),
        R("/v1/grants", guarded(create_grant), methods=["POST"]),
        R("/v1/grants", guarded(list_grants), methods=["GET"]),
        R("/v1/grants/{grant_id}", guarded(get_grant), methods=["GET"]),
        R("/v1/grants/{grant_id}/leases", guarded(grant_leases), methods=["GET"]),
        R("/v1/grants/{grant_id}/decisions", guarded(grant_decisions), methods=["GET"]),
        R("/v1/grants/{grant_id}/{action:str}", guarded(grant_action), methods=["POST"]),
        R("/v1/decisions/{decision_id}", guarded(get_decision), methods=["GET"]),
        R("/v1/decisions/{decision_id}/result", guarded(report_result), methods=["POST"]),
        R("/v1/calls", guarded(call_tool), methods=["POST"]),
        R("/v1/approvals", guarded(list_approvals), methods=["GET"]),
        R("/v1/approvals/{approval_id}/{action:str}", guarded(approval_action), methods=["POST"]),
        R("/v1/tools/{tool}/repin", guarded(repin_tool), methods=["POST"]),
        R("/v1/audit", guarded(audit), methods=["GET"]),
        R("/v1/audit/verify", guarded(audit_verify), methods=["GET"]),
        R("/v1/introspect", guarded(introspect), methods=["POST"]),
    ]
