"""The policy document shape, validated with pydantic (extra fields are errors).

Each section item is validated on its own so that one bad rule does not hide the problems of the
others; constraints stay raw mappings here and are compiled by `policies.conditions`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator

__all__ = [
    "TIER_NAMES",
    "APPROVALS",
    "DocumentModel",
    "TierModel",
    "ToolModel",
    "ScopeItemModel",
    "RoleModel",
    "AgentWhenModel",
    "TimeWindowModel",
    "WhenModel",
    "RuleModel",
    "DriftModel",
    "RateLimitModel",
]

TIER_NAMES: tuple[str, ...] = ("low", "privileged", "critical")
APPROVALS: tuple[str, ...] = ("auto", "one_human", "two_humans")

CODE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocumentModel(_Strict):
    """Top level; sections are validated item by item afterwards."""

    version: Literal[1]
    name: str = Field(default="", max_length=128)
    description: str = Field(default="", max_length=2000)
    tiers: dict[str, Any] = Field(default_factory=dict)
    tools: list[Any] = Field(default_factory=list)
    roles: dict[str, Any] = Field(default_factory=dict)
    rules: list[Any] = Field(default_factory=list)
    drift: dict[str, Any] | None = None
    rate_limits: list[Any] = Field(default_factory=list)


class TierModel(_Strict):
    max_ttl_s: StrictInt = Field(gt=0, le=7 * 24 * 3600)
    approval: Literal["auto", "one_human", "two_humans"]
    credential_ttl_s: StrictInt = Field(gt=0, le=3600)
    requires_justification: StrictBool | None = None
    review_after_use: StrictBool | None = None


class ToolModel(_Strict):
    match: str = Field(min_length=1, max_length=256)
    tier: str
    effect: Literal["read", "write", "egress"] = "write"
    audience: str | None = Field(default=None, max_length=256)
    sensitive_args: list[str] = Field(default_factory=list)
    redact_args: list[str] = Field(default_factory=list)
    untrusted_output: StrictBool = False
    credential: dict[str, Any] = Field(default_factory=dict)
    description: str = ""


class ScopeItemModel(_Strict):
    tool: str = Field(min_length=1, max_length=256)
    args: dict[str, Any] = Field(default_factory=dict)


class RoleModel(_Strict):
    max_tier: str = "privileged"
    baseline: list[Any] = Field(default_factory=list)
    ceiling: list[Any] = Field(default_factory=list)
    approval_after_drift: StrictBool = True
    description: str = ""


class AgentWhenModel(_Strict):
    id: dict[str, Any] | None = None
    role: dict[str, Any] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class TimeWindowModel(_Strict):
    between: tuple[str, str] | None = None
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    tz: str = "UTC"


class WhenModel(_Strict):
    tool: str | dict[str, Any] | None = None
    tier: dict[str, Any] | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    agent: AgentWhenModel | None = None
    time: TimeWindowModel | None = None
    annotations: dict[str, Any] = Field(default_factory=dict)


class RuleModel(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    effect: Literal["allow", "deny", "review"]
    code: str | None = Field(default=None, pattern=CODE_PATTERN)
    message: str = Field(default="", max_length=500)
    description: str = ""
    when: WhenModel = Field(default_factory=WhenModel)
    unless: WhenModel | None = None


JUDGE_FAILURE_MODES = ("deny", "allow_with_signal")


class DriftModel(_Strict):
    threshold: StrictFloat | StrictInt = Field(default=1.0, gt=0)
    window_s: StrictInt = Field(default=3600, gt=0)
    weights: dict[str, StrictFloat | StrictInt] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("extra")
    @classmethod
    def _judge_failure_mode(cls, extra: dict[str, Any]) -> dict[str, Any]:
        mode = extra.get("judge_failure_mode")
        if mode is not None and mode not in JUDGE_FAILURE_MODES:
            raise ValueError(f"judge_failure_mode must be one of {JUDGE_FAILURE_MODES}")
        return extra


class RateLimitModel(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    per: Literal["agent", "grant", "tool"] = "agent"
    tool: str = Field(default="*", min_length=1, max_length=256)
    limit: str = Field(min_length=1, max_length=100)
