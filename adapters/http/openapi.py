"""`/openapi.json`: every route of the app, with the JSON Schema of each request body."""

from __future__ import annotations

import re
from typing import Any, Iterable

from starlette.routing import BaseRoute, Mount, Route

from .schemas import (
    AuthorizeBody,
    CallBody,
    GrantBody,
    IntrospectBody,
    NoteBody,
    RenewBody,
    ResultBody,
)

__all__ = ["openapi_document"]

_BODIES: dict[tuple[str, str], type] = {
    ("POST", "/v1/grants"): GrantBody,
    ("POST", "/v1/authorize"): AuthorizeBody,
    ("POST", "/v1/decisions/{decision_id}/result"): ResultBody,
    ("POST", "/v1/introspect"): IntrospectBody,
    ("POST", "/v1/calls"): CallBody,
    ("POST", "/v1/grants/{grant_id}/{action}"): NoteBody,
    ("POST", "/v1/approvals/{approval_id}/{action}"): NoteBody,
}
_RENEW = RenewBody

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"},
                                            "message": {"type": "string"},
                                            "details": {}}}},
}


def _path(route_path: str) -> str:
    return re.sub(r"{(\w+)(:\w+)?}", r"{\1}", route_path)


def openapi_document(routes: Iterable[BaseRoute], extra_paths: dict[str, Any] | None = None,
                     version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": _ERROR}
    for route in routes:
        if isinstance(route, Mount) or not isinstance(route, Route):
            continue
        path = _path(route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op: dict[str, Any] = {
                "summary": (route.endpoint.__doc__ or route.name or "").strip().splitlines()[0]
                if route.endpoint.__doc__ else route.name,
                "operationId": f"{method.lower()}_{route.name}",
                "parameters": [{"name": p, "in": "path", "required": True,
                                "schema": {"type": "string"}}
                               for p in re.findall(r"{(\w+)}", path)],
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "default": {"description": "Error",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                },
            }
            if path not in ("/healthz", "/.well-known/jwks.json", "/openapi.json"):
                op["security"] = [{"bearer": []}]
            model = _BODIES.get((method, path))
            if model is not None:
                name = model.__name__
                schemas[name] = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for sub, sch in schemas[name].pop("$defs", {}).items():
                    schemas[sub] = sch
                ref = {"$ref": f"#/components/schemas/{name}"}
                if path == "/v1/grants/{grant_id}/{action}":
                    schemas["RenewBody"] = _RENEW.model_json_schema(ref_template="#/components/schemas/{model}")
                    schemas["RenewBody"].pop("$defs", None)
                    ref = {"oneOf": [ref, {"$ref": "#/components/schemas/RenewBody"}]}
                op["requestBody"] = {"required": path not in ("/v1/grants/{grant_id}/{action}",
                                                              "/v1/approvals/{approval_id}/{action}"),
                                     "content": {"application/json": {"schema": ref}}}
            paths.setdefault(path, {})[method.lower()] = op
    for p, item in (extra_paths or {}).items():
        paths.setdefault(p, {}).update(item)
    return {
        "openapi": "3.1.0",
        "info": {"title": "JITGate", "version": version,
                 "description": "Just-in-time authorization for AI-agent tool calls"},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
