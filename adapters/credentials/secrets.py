"""Upstream secrets: referenced by name, held by the gateway, added to the forwarded request only.

Configuration names each secret and where it lives (``{"crm_key": {"env": "CRM_API_KEY"}}`` or
``{"file": "/run/secrets/crm"}``); policy only ever names it. ``Secret`` masks itself in
repr/str; ``Redactor`` scrubs every value the resolver handed out (and the derived forms, such as
a Basic auth header) from outputs and messages before they reach the agent, a log or the audit.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from gateway.clock import Clock
from gateway.model import Credential
from gateway.ports import MintRequest


__all__ = ["Secret", "SecretError", "SecretResolver", "InjectionSpec", "inject_http",
           "inject_env", "SecretInjectingIssuer", "Redactor", "REDACTED"]

REDACTED = "[REDACTED]"
_MIN_SCRUB_LEN = 4


class Secret:
    """A secret string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


class SecretError(Exception):
    """A secret could not be resolved. The message names the secret, never its value."""

    code = "secret_unavailable"

    def __init__(self, name: str) -> None:
        self.secret_name = name
        super().__init__(f"secret_unavailable: secret {name!r} is not available")


class SecretResolver:
    """Resolves secret names from settings: ``{name: {"env": VAR} | {"file": PATH}}``."""

    def __init__(self, config: Mapping[str, Mapping[str, str]],
                 environ: Mapping[str, str] | None = None) -> None:
        for name, where in config.items():
            if not isinstance(where, Mapping) or len(where) != 1 or next(iter(where)) not in (
                    "env", "file"):
                raise ValueError(f"secret {name!r} must name exactly one of 'env' or 'file'")
        self._config = dict(config)
        self._environ = environ if environ is not None else os.environ
        self._seen: set[str] = set()

    def names(self) -> list[str]:
        return sorted(self._config)

    def resolve(self, name: str) -> Secret:
        where = self._config.get(name)
        if where is None:
            raise SecretError(name)
        try:
            if "env" in where:
                value = self._environ[where["env"]]
            else:
                value = Path(where["file"]).read_text("utf-8").rstrip("\r\n")
        except (KeyError, OSError, UnicodeDecodeError):
            raise SecretError(name) from None
        if not value:
            raise SecretError(name)
        self.remember(value)
        for form in _encoded_forms(value):
            self.remember(form)
        return Secret(value)

    def configured_values(self) -> frozenset[str]:
        """Every value (and encoded form) of every configured secret that resolves now: what the
        Redactor scrubs, whichever resolver instance injected the secret."""
        for name in self._config:
            try:
                self.resolve(name)
            except SecretError:
                continue
        return self.known_values()

    def remember(self, value: str) -> None:
        """Register a value (or a form derived from a secret) for the Redactor."""
        if len(value) >= _MIN_SCRUB_LEN:
            self._seen.add(value)

    def known_values(self) -> frozenset[str]:
        return frozenset(self._seen)


def _encoded_forms(value: str) -> list[str]:
    """Base64 forms of a secret an upstream might echo (standard, URL-safe, unpadded)."""
    raw = value.encode("utf-8")
    forms = {base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")}
    return sorted(forms | {f.rstrip("=") for f in forms})


@dataclass(frozen=True, slots=True)
class InjectionSpec:
    """How an upstream wants its credential.

    ``bearer``: ``Authorization: Bearer <secret>``; ``api_key``: ``<header>: <secret>``;
    ``basic``: ``Authorization: Basic base64(<username>:<secret>)`` (without ``username`` the
    secret holds ``user:password``); ``env``: ``<env_var>=<secret>`` for stdio upstreams.
    """

    secret: str
    kind: Literal["bearer", "api_key", "basic", "env"] = "bearer"
    header: str = ""
    username: str | None = None
    env_var: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InjectionSpec":
        spec = cls(secret=str(data["secret"]), kind=data.get("kind", "bearer"),
                   header=str(data.get("header", "")), username=data.get("username"),
                   env_var=str(data.get("env_var", "")))
        if spec.kind not in ("bearer", "api_key", "basic", "env"):
            raise ValueError(f"unknown injection kind {spec.kind!r}")
        if spec.kind == "env" and not spec.env_var:
            raise ValueError("an env injection needs env_var")
        return spec

    @property
    def header_name(self) -> str:
        if self.kind == "api_key":
            return self.header or "X-API-Key"
        return self.header or "Authorization"


def inject_http(headers: Mapping[str, str], spec: InjectionSpec,
                resolver: SecretResolver) -> dict[str, str]:
    """A copy of ``headers`` with the upstream credential added. Raises SecretError."""
    if spec.kind == "env":
        raise ValueError("an env injection cannot go into HTTP headers")
    value = resolver.resolve(spec.secret).reveal()
    if spec.kind == "bearer":
        header_value = f"Bearer {value}"
    elif spec.kind == "api_key":
        header_value = value
    else:
        userpass = value if spec.username is None else f"{spec.username}:{value}"
        encoded = base64.b64encode(userpass.encode("utf-8")).decode("ascii")
        resolver.remember(encoded)
        header_value = f"Basic {encoded}"
    out = {k: v for k, v in headers.items() if k.lower() != spec.header_name.lower()}
    out[spec.header_name] = header_value
    return out


def inject_env(env: Mapping[str, str], spec: InjectionSpec,
               resolver: SecretResolver) -> dict[str, str]:
    """A copy of ``env`` with the secret under ``spec.env_var``. Raises SecretError."""
    if spec.kind != "env":
        raise ValueError("only an env injection goes into a process environment")
    out = dict(env)
    out[spec.env_var] = resolver.resolve(spec.secret).reveal()
    return out


class SecretInjectingIssuer:
    """``CredentialIssuer`` of kind ``secret``: the credential carries only forwarding material.

    The spec comes from ``request.options["inject"]`` (a dict, see InjectionSpec.from_dict) or from
    ``specs[tool]``. ``Credential.value`` is always None: nothing for the agent.
    """

    kind = "secret"

    def __init__(self, resolver: SecretResolver,
                 specs: Mapping[str, InjectionSpec] | None = None, *,
                 clock: Clock | None = None) -> None:
        self.resolver = resolver
        self._clock = clock  # accepted for symmetry with the other issuers; leases use request.now
        self._specs = dict(specs or {})

    async def mint(self, request: MintRequest) -> Credential:
        raw = request.options.get("inject")
        spec = InjectionSpec.from_dict(raw) if raw is not None else self._specs.get(
            request.call.tool)
        if spec is None:
            raise SecretError("(none configured)")
        if spec.kind == "env":
            forward: dict[str, Any] = {"env": inject_env({}, spec, self.resolver)}
        else:
            forward = {"headers": inject_http({}, spec, self.resolver)}
        return Credential(lease=request.lease(self.kind), value=None, forward=forward)

    async def release(self, lease: Any, reason: str) -> None:
        return None


class Redactor:
    """Scrubs every secret value the resolver handed out from strings and nested data."""

    def __init__(self, resolver: SecretResolver | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self._resolver = resolver
        self._extra = {v for v in extra if len(v) >= _MIN_SCRUB_LEN}

    def _values(self) -> list[str]:
        values = set(self._extra)
        if self._resolver is not None:
            values |= self._resolver.configured_values()
        return sorted(values, key=len, reverse=True)  # longest first: derived forms included

    def scrub(self, value: Any) -> Any:
        values = self._values()
        return self._scrub(value, values) if values else value

    def _scrub(self, value: Any, values: list[str]) -> Any:
        if isinstance(value, str):
            for secret in values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, bytes):
            return self._scrub(value.decode("utf-8", "replace"), values).encode("utf-8")
        if isinstance(value, Mapping):
            return {self._scrub(k, values): self._scrub(v, values) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._scrub(v, values) for v in value)
        return value
