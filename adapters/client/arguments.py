"""The arguments a tool will receive, checked against the ones the model sent.

Agent frameworks validate a tool call's JSON with the tool's own schema (pydantic, lax mode)
before the function runs: `"5000"` becomes `5000`, `"yes"` becomes `True`. The gateway must
authorize what the tool receives, not what the model wrote, or a rule on `amount > 1000` is
skipped by sending the amount as a string.

`received_arguments(sent, received)` takes the model's arguments and the values the tool's
validation produced, and returns the values the tool will receive, as plain JSON, to be
authorized. It does so only when every value the model sent reaches the tool unchanged (an
integer read as the same float is the same number); the schema's defaults for arguments (or
fields of nested objects) the model left out are included, since the tool receives them too.
Anything else (a coerced type, a value a validator rewrote, an argument dropped, a value JSON
cannot hold: enums, dates, NaN) raises `ArgumentsChanged`, and the adapter refuses the call
with `invalid_arguments`: nothing runs.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from pydantic import BaseModel

__all__ = ["ArgumentsChanged", "plain_json", "received_arguments", "invalid_arguments_text",
           "model_fields_received"]


class ArgumentsChanged(ValueError):
    """The tool would not receive the arguments as sent (or they cannot be checked)."""

    code = "invalid_arguments"

    def __init__(self, reason: str, names: Sequence[str] = ()) -> None:
        self.reason = reason
        self.names = tuple(names)
        super().__init__(reason + (f" ({', '.join(self.names)})" if self.names else ""))


class _NotPlain(Exception):
    pass


def plain_json(value: Any) -> Any:
    """`value` as plain JSON (dict, list, str, int, finite float, bool, None); raises ValueError.

    Pydantic models become their fields (by alias), tuples become lists. Anything else (enums,
    dates, sets, NaN) is not plain JSON: a tool receiving it does not receive what was sent.
    """
    try:
        return _plain(value, set())
    except _NotPlain:
        raise ValueError("not plain JSON") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _plain(value: Any, active: set[int]) -> Any:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _NotPlain
        return value
    if id(value) in active:
        raise _NotPlain
    active.add(id(value))
    try:
        if kind in (list, tuple):
            return [_plain(item, active) for item in value]
        if kind is dict:
            if any(type(key) is not str for key in value):
                raise _NotPlain
            return {key: _plain(item, active) for key, item in value.items()}
        if isinstance(value, BaseModel):
            try:
                fields = model_fields_received(value)
            except ValueError:
                raise _NotPlain from None
            return _plain(fields, active)
        raise _NotPlain
    finally:
        active.discard(id(value))


def model_fields_received(model: BaseModel) -> dict[str, Any]:
    """A validated pydantic model's field values (by alias), read from storage, no serializer.

    Raises ValueError when a field's alias is not a plain key (the keys sent cannot be matched).
    """
    fields = type(model).model_fields
    out: dict[str, Any] = {}
    for name, value in object.__getattribute__(model, "__dict__").items():
        field = fields.get(name)
        alias = None
        if field is not None:
            alias = field.validation_alias if field.validation_alias is not None else field.alias
        if alias is not None and type(alias) is not str:
            raise ValueError(f"field {name!r} has no single key")  # AliasPath / AliasChoices
        out[alias or name] = value
    extra = getattr(model, "__pydantic_extra__", None) or {}
    for key, value in extra.items():
        if key in out:
            raise ValueError(f"extra key {key!r} shadows a field")
        out[key] = value
    return out


def _same(sent: Any, received: Any) -> bool:
    if type(sent) is bool or type(received) is bool:
        return type(sent) is bool and type(received) is bool and sent == received
    if type(sent) in (int, float) and type(received) in (int, float):
        return sent == received  # 5 and 5.0 are one number; "5" and 5 are not
    if type(sent) is not type(received):
        return False
    if type(sent) is list:
        return len(sent) == len(received) and all(map(_same, sent, received))
    if type(sent) is dict:  # keys only the tool has are defaults, authorized as received
        return all(k in received and _same(v, received[k]) for k, v in sent.items())
    return bool(sent == received)


def received_arguments(sent: Mapping[str, Any], received: Mapping[str, Any]) -> dict[str, Any]:
    """What to authorize: the values the tool receives, if each value sent reaches it unchanged."""
    try:
        plain = plain_json(dict(received))
    except ValueError:
        changed = []
        for key, value in received.items():
            try:
                plain_json(value)
            except ValueError:
                changed.append(key)
        raise ArgumentsChanged("the tool would receive values that are not plain JSON",
                               sorted(changed)) from None
    changed = sorted(key for key, value in sent.items()
                     if key not in plain or not _same(value, plain[key]))
    if changed:
        raise ArgumentsChanged("the tool's schema would change the values sent", changed)
    return plain


def invalid_arguments_text(exc: ArgumentsChanged) -> str:
    """The message a model reads when its arguments would not reach the tool as sent."""
    where = f" (arguments: {', '.join(exc.names)})" if exc.names else ""
    return ("JITGate refused this call; it did not run (code=invalid_arguments). "
            f"The tool would not run with the arguments as sent: {exc.reason}{where}. "
            "Send each value with the type the tool's parameters ask for.")
