"""One typed settings object, read once: a YAML file plus `JITGATE_*` environment variables.

This is the only module that reads the environment. Secrets are referenced by name
(`secrets: {name: {env: VAR} | {file: PATH}}`); their values are resolved by the credential
adapters at use, never stored here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "WorkloadIssuer", "load_settings", "DEFAULT_DATA_DIR"]

DEFAULT_DATA_DIR = Path(".jitgate")


class WorkloadIssuer(BaseModel):
    """A trusted issuer of workload JWTs (OIDC/SPIFFE style)."""

    model_config = ConfigDict(extra="forbid")
    issuer: str
    audience: str
    public_key_file: str | None = None
    public_key_pem: str | None = None
    jwks_file: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["EdDSA", "ES256", "RS256"])
    role_claim: str = "jitgate_role"
    default_role: Literal["agent", "reviewer", "admin"] = "agent"
    # The roles this issuer may hand out: a token claiming any other is refused. Reviewer and
    # admin tokens must be allowed here explicitly.
    allowed_roles: list[Literal["agent", "reviewer", "admin"]] = Field(
        default_factory=lambda: ["agent"])
    attributes_claim: str = "jitgate_attributes"
    # The policy roles (`policy_role` attribute) this issuer may name; None: any.
    allowed_policy_roles: list[str] | None = None

    @model_validator(mode="after")
    def _default_role_allowed(self) -> "WorkloadIssuer":
        if self.default_role not in self.allowed_roles:
            raise ValueError(f"default_role {self.default_role!r} is not in allowed_roles")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JITGATE_", extra="forbid",
                                      env_nested_delimiter="__")

    host: str = "127.0.0.1"
    port: int = 8750
    data_dir: Path = DEFAULT_DATA_DIR
    policy_files: list[str] = Field(default_factory=list)  # empty: the default pack
    store: Literal["sqlite", "memory", "postgres"] = "sqlite"
    postgres_dsn: str | None = None
    postgres_schema: str = "jitgate"
    redis_url: str | None = None  # rate limits, single-use jti, revocation fan-out
    public_url: str | None = None  # how agents and tools reach this gateway
    issuer: str = "jitgate"  # `iss` of call tokens
    max_body_bytes: int = 1_048_576
    audit_checkpoint_every: int = 100
    # SQLite: "full" fsyncs every commit before answering; "normal" survives a process crash but
    # may lose the last commits on power loss (faster single-call latency). Default: full.
    audit_sync: Literal["full", "normal"] = "full"
    workload_issuers: list[WorkloadIssuer] = Field(default_factory=list)
    upstreams: list[dict[str, Any]] = Field(default_factory=list)  # adapters.mcp UpstreamConfig
    http_tools: list[dict[str, Any]] = Field(default_factory=list)  # adapters.credentials HttpToolSpec
    secrets: dict[str, dict[str, str]] = Field(default_factory=dict)
    credential_issuers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    drift_enabled: bool = True
    semantic_enabled: bool = False
    judge: dict[str, Any] | None = None  # {base_url, model, api_key_secret, timeout_s, on_failure}
    allowed_hosts: list[str] = Field(default_factory=list)  # Host headers /mcp accepts beyond localhost
    log_level: str = "info"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jitgate.db"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional YAML file, then the environment, then explicit overrides."""
    data: dict[str, Any] = {}
    if config_file is not None:
        loaded = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: the configuration must be a mapping")
        data.update(loaded)
    env_only = Settings()  # what the environment says
    merged = {**data}
    for name in Settings.model_fields:
        if name in env_only.model_fields_set:
            merged[name] = getattr(env_only, name)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(merged)
