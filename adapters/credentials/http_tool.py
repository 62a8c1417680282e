"""Forwarding an allowed call to a plain HTTP tool, with its call token and/or injected secret.

The arguments go as the JSON body (GET/DELETE/HEAD: as query parameters, see
``query_arguments``: a string as it is, any other value as its JSON text, named in the
``X-JITGate-Json-Args`` header so that ``CallTokenMiddleware`` reads back the same typed arguments
and the token's argument digest verifies). The call token goes in
``Authorization: Bearer <token>``, unless the injected secret itself uses ``Authorization``
(bearer/basic), in which case the token goes in ``X-JITGate-Call-Token``; ``CallTokenMiddleware``
reads both. Redirects are not followed (they could carry the secret elsewhere). The answer is
``{"status", "body"}`` with every secret scrubbed; a network failure raises
``GatewayError("upstream_unavailable")`` with no exception text.

The tool's configured ``audience`` is what it verifies, so it must equal the policy's
``audience`` for the tool (the core mints ``aud`` from policy): ``audience_problems(policy)`` lists
every mismatch (startup refuses to run with one), and a token whose ``aud`` differs at call time
(after a policy reload) is never sent: ``GatewayError("credential_unavailable")``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from gateway.errors import GatewayError
from gateway.model import Credential, ToolCall

from .secrets import InjectionSpec, Redactor, SecretError, SecretResolver, inject_http
from .verifier import TokenError, parse_token

__all__ = ["HttpToolSpec", "HttpToolForwarder", "CALL_TOKEN_HEADER", "JSON_ARGS_HEADER",
           "MAX_RESPONSE_BYTES", "QUERY_METHODS", "query_arguments", "arguments_from_query"]

CALL_TOKEN_HEADER = "X-JITGate-Call-Token"
# the query parameters that carry JSON text (a JSON array of their names, sorted); the token's
# argument digest covers the typed values, so a changed, added or dropped name fails to verify
JSON_ARGS_HEADER = "X-JITGate-Json-Args"
QUERY_METHODS = ("GET", "DELETE", "HEAD")
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_log = logging.getLogger("jitgate.credentials.http_tool")


@dataclass(frozen=True, slots=True)
class HttpToolSpec:
    name: str
    url: str
    audience: str
    method: str = "POST"
    send_token: bool = True
    inject: InjectionSpec | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HttpToolSpec":
        inject = data.get("inject")
        return cls(name=str(data["name"]), url=str(data["url"]), audience=str(data["audience"]),
                   method=str(data.get("method", "POST")).upper(),
                   send_token=bool(data.get("send_token", True)),
                   inject=InjectionSpec.from_dict(inject) if inject else None,
                   timeout_s=float(data.get("timeout_s", 10.0)))

    @property
    def token_header(self) -> str:
        if self.inject is not None and self.inject.header_name.lower() == "authorization":
            return CALL_TOKEN_HEADER
        return "Authorization"


class HttpToolForwarder:
    """``forward(call, credential)`` for HTTP tools, dispatching on ``call.tool``."""

    def __init__(self, tools: HttpToolSpec | Iterable[HttpToolSpec], *,
                 resolver: SecretResolver | None = None, redactor: Redactor | None = None,
                 client: Any = None) -> None:
        specs = [tools] if isinstance(tools, HttpToolSpec) else list(tools)
        self.tools: dict[str, HttpToolSpec] = {s.name: s for s in specs}
        self._resolver = resolver
        self._redactor = redactor or Redactor(resolver)
        self._client = client

    def audience_for(self, tool: str) -> str | None:
        spec = self.tools.get(tool)
        return spec.audience if spec is not None else None

    def audience_problems(self, policy: Any) -> list[str]:
        """One line per tool whose configured audience or token need disagrees with ``policy``."""
        problems: list[str] = []
        for name, spec in sorted(self.tools.items()):
            tool_spec = policy.tool_spec(name)
            if spec.send_token and tool_spec.audience != spec.audience:
                problems.append(f"http tool {name!r}: audience {spec.audience!r} differs from the "
                                f"policy audience {tool_spec.audience!r}")
            kind = dict(tool_spec.credential or {}).get("kind")
            if spec.send_token and kind is not None and "jwt" not in str(kind).split("+"):
                problems.append(f"http tool {name!r} expects a call token but policy mints "
                                f"credential kind {kind!r}")
        return problems

    def headers_for(self, spec: HttpToolSpec, credential: Credential | None) -> dict[str, str]:
        headers: dict[str, str] = {"Accept": "application/json"}
        if spec.inject is not None:
            if self._resolver is None:
                raise GatewayError("credential_unavailable")
            try:
                headers = inject_http(headers, spec.inject, self._resolver)
            except SecretError:
                _log.warning("secret for tool %s is unavailable", spec.name)
                raise GatewayError("credential_unavailable") from None
        if credential is not None:
            for name, value in dict(credential.forward.get("headers", {})).items():
                headers[str(name)] = str(value)
            if spec.send_token and credential.value:
                token_header = spec.token_header
                headers[token_header] = (f"Bearer {credential.value}"
                                         if token_header == "Authorization" else credential.value)
        return headers

    async def __call__(self, call: ToolCall, credential: Credential | None) -> dict[str, Any]:
        spec = self.tools.get(call.tool)
        if spec is None:
            raise GatewayError("unknown_tool")
        if spec.send_token and (credential is None or not credential.value):
            raise GatewayError("credential_unavailable")
        if spec.send_token and credential is not None and not _audience_ok(credential.value,
                                                                           spec.audience):
            _log.warning("call token for tool %s has another audience; not sent", spec.name)
            raise GatewayError("credential_unavailable")
        headers = self.headers_for(spec, credential)
        arguments = dict(call.arguments)
        request: dict[str, Any] = {"headers": headers, "timeout": spec.timeout_s}
        if spec.method in QUERY_METHODS:
            request["params"], as_json = query_arguments(arguments)
            if as_json:
                headers[JSON_ARGS_HEADER] = json.dumps(as_json, separators=(",", ":"))
        else:
            request["json"] = arguments
        try:
            response = await self._send(spec, request)
        except GatewayError:
            raise
        except Exception as exc:
            _log.warning("upstream for tool %s is unavailable (%s)", spec.name,
                         type(exc).__name__)
            raise GatewayError("upstream_unavailable") from None
        return {"status": response[0], "body": self._redactor.scrub(response[1])}

    async def _send(self, spec: HttpToolSpec, request: dict[str, Any]) -> tuple[int, Any]:
        import httpx2

        if self._client is not None:
            r = await self._client.request(spec.method, spec.url, follow_redirects=False,
                                           **request)
        else:
            async with httpx2.AsyncClient(follow_redirects=False) as client:
                r = await client.request(spec.method, spec.url, **request)
        content = r.content[:MAX_RESPONSE_BYTES]
        if "json" in r.headers.get("content-type", ""):
            try:
                return r.status_code, json.loads(content)
            except ValueError:
                pass
        return r.status_code, content.decode("utf-8", "replace")


def query_arguments(arguments: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The query parameters for `arguments`, and the sorted names of those sent as JSON text
    (every value that is not a string: numbers, booleans, null, lists, objects)."""
    params: dict[str, str] = {}
    as_json: list[str] = []
    for name, value in arguments.items():
        if isinstance(value, str):
            params[name] = value
        else:
            params[name] = _json_text(value)
            as_json.append(name)
    return params, sorted(as_json)


def arguments_from_query(pairs: Iterable[tuple[str, str]], json_names: str | None
                         ) -> dict[str, Any]:
    """The typed arguments back from the query (`pairs`) and the ``X-JITGate-Json-Args`` value:
    the inverse of `query_arguments`. Raise ValueError for anything it cannot have produced
    (a repeated name, a named parameter that is absent, not JSON, or a JSON string)."""
    arguments: dict[str, Any] = {}
    for name, value in pairs:
        if name in arguments:
            raise ValueError("a query parameter is repeated")
        arguments[name] = value
    if json_names is None:
        return arguments
    names = json.loads(json_names)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("the JSON argument names are not a list of names")
    if len(set(names)) != len(names):
        raise ValueError("a JSON argument name is repeated")
    for name in names:
        if name not in arguments:
            raise ValueError("a JSON argument is missing from the query")
        value = json.loads(arguments[name], parse_constant=_no_constant)
        if isinstance(value, str):
            raise ValueError("a string argument is sent as it is, not as JSON")
        arguments[name] = value
    return arguments


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _audience_ok(token: str | None, audience: str) -> bool:
    try:
        aud = parse_token(token or "").claims.get("aud")
    except TokenError:
        return False
    return aud == audience or (isinstance(aud, list) and audience in aud)
