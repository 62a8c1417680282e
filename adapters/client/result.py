"""What the client hands back: an authorization result, and the one client-side error type.

`AuthorizeResult` is the same whether it came over HTTP or from an in-process `Gateway`, so an
adapter never knows which. `refusal_text()` is the message a model reads when a call is not
allowed: one line, the code and the decision id, never a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Mapping

__all__ = ["AuthorizeResult", "GatewayClientError", "CLIENT_ERROR_CODES"]

# Codes the client raises on its own (the gateway's codes live in gateway/errors.py).
CLIENT_ERROR_CODES: Final[dict[str, str]] = {
    "gateway_unreachable": "the gateway could not be reached, so the call is refused",
    "invalid_response": "the gateway answered with something the client cannot read",
    "invalid_arguments": "the arguments are not plain JSON (NaN, Infinity or an object JSON "
                         "cannot hold), or the tool would not receive them as sent",
    "sync_unavailable": "the agent runs synchronously and the gate has no synchronous client",
    "internal_error": "the client failed while asking the gateway, so the call is refused",
}


class GatewayClientError(Exception):
    """An API error from the gateway (its code and status), or a client-side failure."""

    def __init__(self, code: str, message: str = "", status: int = 0) -> None:
        self.code = code
        self.message = message or CLIENT_ERROR_CODES.get(code, code.replace("_", " "))
        self.status = status
        super().__init__(f"{code}: {self.message}")


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    decision_id: str
    effect: str  # allow | deny | review | throttle
    code: str
    reasons: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    policy_revision: str = ""
    grant_id: str | None = None
    retry_after: float | None = None
    approval_id: str | None = None
    token: str | None = field(default=None, repr=False)  # the per-call credential, if any
    lease_id: str | None = None
    token_expires_at: float | None = None

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    @property
    def throttled(self) -> bool:
        return self.effect == "throttle"

    @property
    def needs_review(self) -> bool:
        return self.effect == "review"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "AuthorizeResult":
        """Build from the `POST /v1/authorize` body (or `Decision.public()` + credential)."""
        try:
            cred = data.get("credential") or {}
            retry = data.get("retry_after")
            return cls(
                decision_id=str(data["decision_id"]),
                effect=str(data["effect"]),
                code=str(data["code"]),
                reasons=tuple(str(r) for r in data.get("reasons") or ()),
                rule_ids=tuple(str(r) for r in data.get("rule_ids") or ()),
                policy_revision=str(data.get("policy_revision") or ""),
                grant_id=data.get("grant_id"),
                retry_after=float(retry) if retry is not None else None,
                approval_id=data.get("approval_id"),
                token=cred.get("token"),
                lease_id=cred.get("lease_id"),
                token_expires_at=cred.get("expires_at"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GatewayClientError("invalid_response") from exc

    def refusal_text(self) -> str:
        """The message a model reads in place of the tool's output."""
        if self.effect == "review":
            head = "JITGate: this call needs a reviewer's approval and did not run"
        elif self.effect == "throttle":
            head = "JITGate: this call was throttled and did not run"
        else:
            head = "JITGate refused this call; it did not run"
        parts = [f"{head} (code={self.code}, decision_id={self.decision_id})."]
        if self.reasons:
            parts.append("Reason: " + "; ".join(self.reasons) + ".")
        if self.approval_id:
            parts.append(f"Approval id: {self.approval_id}.")
        if self.retry_after is not None:
            parts.append(f"Retry after {self.retry_after:g} s.")
        if self.effect == "deny":
            parts.append("Do not retry it; continue within your task's scope or stop.")
        return " ".join(parts)
