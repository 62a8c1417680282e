"""Every stable code the gateway answers with, in one table, and the one error type.

Decisions carry codes (deny is a value); API errors raise `GatewayError(code)`. Tests assert
codes, never messages. Messages are one line for people and never hold a secret.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DECISION_CODES", "ERROR_CODES", "GatewayError", "http_status"]

# Decision codes: the `code` of a Decision.
DECISION_CODES: Final[dict[str, str]] = {
    "allowed": "the call is within the grant (or baseline) and no rule objects",
    "allowed_by_approval": "a reviewer approved this exact call; the approval is now used",
    "no_grant": "no grant was given and the agent's baseline does not cover this tool",
    "not_in_baseline": "the call is outside the agent's baseline permissions",
    "grant_not_found": "the grant id is unknown",
    "grant_not_owned": "the grant belongs to another agent",
    "grant_pending": "the grant is waiting for approval",
    "grant_denied": "the grant was refused",
    "grant_expired": "the grant's time is over",
    "grant_revoked": "the grant was revoked",
    "grant_revoked_drift": "the grant was revoked because the agent drifted from its objective",
    "grant_exhausted": "the grant's call budget is used up",
    "tool_not_in_scope": "the tool is not in the grant's scope",
    "argument_out_of_scope": "an argument is outside the grant's constraint",
    "beyond_ceiling": "the call is beyond the agent role's ceiling under the current policy",
    "policy_deny": "a policy rule denies the call",
    "review_required": "a policy rule requires a reviewer to approve this exact call",
    "approval_pending": "approval for this exact call was requested and is pending",
    "approval_denied": "a reviewer refused this exact call",
    "rate_limited": "too many calls; retry after the given time",
    "retry_backoff": "this call was just denied; retrying it is throttled",
    "tool_changed": "the tool's definition changed since it was pinned",
    "invalid_arguments": "the arguments do not match the tool's input schema",
    "unknown_tool": "no such tool",
    "audit_unavailable": "the audit trail could not record the decision, so the call is denied",
    "credential_unavailable": "no credential could be minted, so the call is denied",
    "store_unavailable": "the state store could not be read, so the call is denied",
    "internal_error": "the gateway could not decide, so the call is denied",
    "detector_unavailable": "a required drift detector failed, so the call is denied",
    "upstream_unavailable": "the tool's server is not reachable",
    "upstream_error": "the tool's server answered the allowed call with an error",
}

# API error codes with their HTTP status.
ERROR_CODES: Final[dict[str, int]] = {
    "malformed_json": 400,
    "invalid_request": 422,
    "unknown_field": 422,
    "invalid_policy": 422,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "unauthenticated": 401,
    "invalid_credentials": 401,
    "forbidden": 403,
    "csrf_invalid": 403,
    "self_approval": 403,
    "not_found": 404,
    "grant_not_found": 404,
    "decision_not_found": 404,
    "approval_not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "already_approved": 409,
    "grant_not_pending": 409,
    "grant_not_active": 409,
    "grant_not_renewable": 409,
    "approval_not_pending": 409,
    "scope_exceeds_ceiling": 403,
    "tier_exceeds_ceiling": 403,
    "ttl_exceeds_tier": 422,
    "justification_required": 422,
    "invalid_scope": 422,
    "rate_limited": 429,
    "audit_unavailable": 503,
    "store_unavailable": 503,
    "upstream_unavailable": 502,
    "internal_error": 500,
}


class GatewayError(Exception):
    """The one error type of the core: a stable code, a one-line message, optional details."""

    def __init__(self, code: str, message: str = "", *, details: dict | None = None) -> None:
        if code not in ERROR_CODES and code not in DECISION_CODES:
            raise ValueError(f"unregistered error code {code!r}")
        self.code = code
        self.message = message or DECISION_CODES.get(code, code.replace("_", " "))
        self.details = details or {}
        super().__init__(f"{code}: {self.message}")

    @property
    def status(self) -> int:
        return http_status(self.code)

    def public(self) -> dict:
        err: dict = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def http_status(code: str) -> int:
    return ERROR_CODES.get(code, 400)
