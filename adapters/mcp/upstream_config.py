"""How the settings describe one upstream MCP server (stdio command or streamable HTTP URL),
and how its secrets are named (`${secret:NAME}` in env/headers, or `secret_env`)."""

from __future__ import annotations

import re
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["UpstreamConfig", "SecretResolver", "SECRET_REF"]

SecretResolver = Callable[[str], str]
SECRET_REF = re.compile(r"\$\{secret:([A-Za-z0-9_.-]{1,128})\}")


class UpstreamConfig(BaseModel):
    """One upstream MCP server, as the settings describe it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # between prefix and tool name: "." (`fs.read_file`), or "_" / "__" / "-" for clients whose
    # model API allows only [A-Za-z0-9_-] in function names (OpenAI via the Agents SDK)
    separator: Literal[".", "_", "__", "-"] = "."
    # env var (stdio) or header (http) -> secret name; `${secret:NAME}` also works in env/headers
    secret_env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _transport_fields(self) -> "UpstreamConfig":
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"upstream {self.name!r}: stdio needs a command")
        if self.transport == "http" and not self.url:
            raise ValueError(f"upstream {self.name!r}: http needs a url")
        return self

    @property
    def namespace(self) -> str:
        return self.prefix or self.name

    def public_name(self, tool: str) -> str:
        return f"{self.namespace}{self.separator}{tool}"
