"""Checking a call's arguments against a tool's input schema (the SDK does not).

`SchemaChecks.error` answers None (the arguments fit) or a one-line summary naming the path
and the keyword that failed, never a value. When the schema cannot be checked at all (a
`pattern` that is not a regex, an unknown `type`, an unresolvable `$ref`, numbers beyond what
the validator handles), the answer is a "cannot be checked" summary too: the edge passes it to
`Gateway.authorize` as `invalid_arguments`, so such a call is denied and audited like any
other schema failure (fail closed), and nothing of the validator's own message (which can
echo argument values) reaches the client or the logs.
"""

from __future__ import annotations

import logging
from typing import Any

import jsonschema

__all__ = ["SchemaChecks", "UNCHECKABLE"]

log = logging.getLogger("jitgate.mcp.schemas")

UNCHECKABLE = "the tool's input schema cannot be checked"


def _kind(exc: BaseException) -> str:
    """The exception's type, for the log (its message can echo argument values)."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


class _Uncheckable:
    """The validator for a schema that could not even be compiled."""


_BROKEN = _Uncheckable()


class SchemaChecks:
    """Compiled argument validators, one per schema object.

    Building a jsonschema validator costs more than the rest of the MCP edge per call; the
    schema dicts live as long as the upstream's cached tool list, so the validator is kept
    with (and checked against) the very dict it was built from.
    """

    _MAX = 4096

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[dict[str, Any], Any]] = {}

    def _validator(self, schema: dict[str, Any]) -> Any:
        hit = self._by_id.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        try:
            cls = jsonschema.validators.validator_for(schema,
                                                      default=jsonschema.Draft202012Validator)
            validator: Any = cls(schema)
        except Exception as exc:  # noqa: BLE001 - a schema we cannot compile cannot pass
            log.warning("tool input schema does not compile (%s)", _kind(exc))
            validator = _BROKEN
        if len(self._by_id) >= self._MAX:
            self._by_id.clear()
        self._by_id[id(schema)] = (schema, validator)
        return validator

    def error(self, schema: dict[str, Any], args: dict[str, Any]) -> str | None:
        """None if `args` fit `schema`, else a one-line summary (paths and keywords only)."""
        validator = self._validator(schema)
        if validator is _BROKEN:
            return UNCHECKABLE
        try:
            if validator.is_valid(args):
                return None
            error = jsonschema.exceptions.best_match(validator.iter_errors(args))
        except Exception as exc:  # noqa: BLE001 - re.error, UnknownType, RecursionError, ...
            log.warning("tool input schema cannot be checked (%s)", _kind(exc))
            return UNCHECKABLE
        if error is None:
            return UNCHECKABLE
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"argument {where} fails the tool's schema ({error.validator})"
