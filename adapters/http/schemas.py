"""Request bodies of the HTTP API: strict pydantic models (unknown fields are errors)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

__all__ = [
    "ScopeItemBody",
    "GrantBody",
    "RenewBody",
    "NoteBody",
    "AuthorizeBody",
    "ResultBody",
    "IntrospectBody",
    "CallBody",
    "BODY_MODELS",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeItemBody(_Strict):
    tool: StrictStr = Field(min_length=1, max_length=256)
    args: dict[str, dict[str, Any]] = Field(default_factory=dict)


class GrantBody(_Strict):
    objective: StrictStr = Field(min_length=1, max_length=4000)
    scope: list[ScopeItemBody] = Field(min_length=1, max_length=100)
    ttl_s: StrictInt = Field(gt=0, le=31_536_000)
    call_budget: StrictInt | None = Field(default=None, gt=0)
    reason: StrictStr = Field(default="", max_length=2000)
    ticket: StrictStr = Field(default="", max_length=256)
    owner: StrictStr = Field(default="", max_length=256)
    justification: StrictStr = Field(default="", max_length=4000)


class RenewBody(_Strict):
    ttl_s: StrictInt | None = Field(default=None, gt=0, le=31_536_000)
    scope: list[ScopeItemBody] | None = Field(default=None, min_length=1, max_length=100)
    justification: StrictStr = Field(default="", max_length=4000)


class NoteBody(_Strict):
    note: StrictStr = Field(default="", max_length=2000)
    reason: StrictStr = Field(default="", max_length=2000)


class AuthorizeBody(_Strict):
    tool: StrictStr = Field(min_length=1, max_length=256)
    arguments: dict[str, Any] = Field(default_factory=dict)
    grant_id: StrictStr | None = Field(default=None, max_length=128)
    call_id: StrictStr | None = Field(default=None, max_length=256)
    session_id: StrictStr | None = Field(default=None, max_length=256)


class ResultBody(_Strict):
    ok: StrictBool
    output: Any = None
    error: StrictStr | None = Field(default=None, max_length=2000)


class IntrospectBody(_Strict):
    token: StrictStr = Field(min_length=1, max_length=8192)
    token_type_hint: StrictStr | None = None


class CallBody(_Strict):
    tool: StrictStr = Field(min_length=1, max_length=256)
    arguments: dict[str, Any] = Field(default_factory=dict)
    grant_id: StrictStr | None = Field(default=None, max_length=128)
    call_id: StrictStr | None = Field(default=None, max_length=256)


BODY_MODELS: dict[str, type[BaseModel]] = {
    "GrantRequest": GrantBody,
    "RenewRequest": RenewBody,
    "Note": NoteBody,
    "AuthorizeRequest": AuthorizeBody,
    "ResultReport": ResultBody,
    "IntrospectRequest": IntrospectBody,
    "CallRequest": CallBody,
}
