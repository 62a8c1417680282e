"""The constraint language shared by grant scopes and rule conditions.

A constraint is a mapping with exactly one operator key, e.g. ``{"prefix": "/workspace"}``.
Compiled once into a frozen `Constraint`; `test()` never raises (a value of the wrong type just
does not satisfy it) and `implies()` is conservative (False when unsure).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Callable

import regex

from policies import patterns
from policies.implication import constraint_implies, path_within

__all__ = [
    "ConditionError",
    "RegexLimit",
    "BoundedRegex",
    "MAX_REGEX_INPUT",
    "REGEX_TIME_LIMIT_S",
    "Constraint",
    "OPERATORS",
    "compile_constraint",
    "resolve_arg",
    "parse_key",
]

MAX_REGEX_LEN = 512
# Regex conditions on agent input (see BoundedRegex): short input on `re`, longer input on
# `regex` within a time limit, and nothing past the cap.
FAST_REGEX_INPUT = 1024
MAX_REGEX_INPUT = 64 * 1024
REGEX_TIME_LIMIT_S = 0.05
_MISSING = object()


class ConditionError(Exception):
    """A constraint or scope that cannot be compiled; `code` is stable snake_case."""

    def __init__(self, code: str, message: str, path: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.path = path


class RegexLimit(Exception):
    """A regex condition could not be judged within its limits: the decision fails closed."""


_NUMBER_TYPES = (int, float)


def _is_number(v: Any) -> bool:
    """JSON numbers only: bools (and other int subclasses) are not numbers."""
    return type(v) in _NUMBER_TYPES


def _tag(v: Any) -> tuple[str, Any]:
    """A hashable identity where True != 1 and 1 == 1.0 (bools are not numbers)."""
    if isinstance(v, bool):
        return ("b", v)
    if _is_number(v):
        return ("n", v)
    if isinstance(v, str):
        return ("s", v)
    if v is None:
        return ("z", None)
    return ("o", id(v))


def _strict_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw_wire(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_thaw_wire(x) for x in v]
    return v


# operators whose match functions are type-guarded and cannot raise on any input
_NEVER_RAISES = frozenset(
    {"eq", "in", "prefix", "glob", "regex", "lt", "le", "gt", "ge", "max_len", "min_len"}
)


@dataclass(frozen=True, eq=False)
class Constraint:
    """One compiled operator. `operand` is the wire operand (lists stored as tuples)."""

    op: str
    operand: Any
    _match: Callable[[Any], bool] = field(repr=False, compare=False)
    _data: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in _NEVER_RAISES and not (self.op == "eq" and isinstance(self._data, (list, tuple, Mapping))):
            object.__setattr__(self, "test", self._match)  # skip the guard on the hot path

    def test(self, value: Any) -> bool:
        try:
            return self._match(value) is True
        except RegexLimit:  # cannot be judged: the whole decision fails closed, not "no match"
            raise
        except Exception:  # a value of the wrong shape never matches (and never raises)
            return False

    def as_dict(self) -> dict[str, Any]:
        if self.op in ("all", "any"):
            return {self.op: [c.as_dict() for c in self._data]}
        if self.op == "not":
            return {"not": self._data.as_dict()}
        if self.op == "eq":
            return {"eq": self._data}
        return {self.op: _thaw_wire(self.operand)}

    def __eq__(self, other: object) -> bool:
        # type-strict: {"eq": 1} and {"eq": true} are different constraints (Python's 1 == True)
        return isinstance(other, Constraint) and self.op == other.op and _strict_equal(
            self.as_dict(), other.as_dict())

    def __hash__(self) -> int:
        # coarse but consistent with the type-strict __eq__ (1 == 1.0, 1 != True)
        return hash(self.op)

    def implies(self, other: "Constraint") -> bool:
        """True only when every value satisfying self also satisfies other."""
        try:
            return constraint_implies(self, other)
        except Exception:
            return False


# ---------------------------------------------------------------- compilation


def _bad(op: str, why: str) -> ConditionError:
    return ConditionError("bad_operand", f"operator {op!r}: {why}")


def _need_str(op: str, v: Any) -> str:
    if not isinstance(v, str):
        raise _bad(op, "expects a string")
    return v


def _need_str_list(op: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) for x in v):
        raise _bad(op, "expects a non-empty list of strings")
    return tuple(v)


def _c_eq(v: Any) -> Constraint:
    if not _json_value(v):
        raise _bad("eq", "expects a JSON value")
    match: Callable[[Any], bool]
    if v is None or isinstance(v, bool):
        match = lambda x: x is v  # noqa: E731
    elif type(v) is str:
        match = lambda x: type(x) is str and x == v  # noqa: E731
    elif _is_number(v):
        nums = _NUMBER_TYPES
        match = lambda x: type(x) in nums and x == v  # noqa: E731
    else:
        match = lambda x: _strict_equal(x, v)  # noqa: E731
    return Constraint("eq", _freeze(v), match, v)


def _json_value(v: Any) -> bool:
    if v is None or isinstance(v, (str, bool)):
        return True
    if _is_number(v):
        return math.isfinite(v)
    if isinstance(v, (list, tuple)):
        return all(_json_value(x) for x in v)
    if isinstance(v, Mapping):
        return all(isinstance(k, str) and _json_value(x) for k, x in v.items())
    return False


def _c_in(v: Any) -> Constraint:
    if not isinstance(v, (list, tuple)) or not v:
        raise _bad("in", "expects a non-empty list")
    if not all(x is None or isinstance(x, (str, bool)) or (_is_number(x) and math.isfinite(x)) for x in v):
        raise _bad("in", "list items must be strings, numbers, booleans or null")
    tags = frozenset(_tag(x) for x in v)
    return Constraint("in", tuple(v), lambda x: _tag(x) in tags)


def _c_prefix(v: Any) -> Constraint:
    p = _need_str("prefix", v)
    return Constraint("prefix", p, lambda x: isinstance(x, str) and x.startswith(p))


def _c_glob(v: Any) -> Constraint:
    rx = patterns.compile_path_glob(_need_str("glob", v))
    lexical = patterns.lexical_path
    return Constraint("glob", v,
                      lambda x: isinstance(x, str) and rx.fullmatch(lexical(x)) is not None)


class BoundedRegex:
    """A pattern an agent's input cannot make run for long. Input up to FAST_REGEX_INPUT
    characters goes to `re` (a backtracking pattern costs at most about a millisecond there);
    longer input goes to the `regex` engine with a REGEX_TIME_LIMIT_S time limit, and input
    past MAX_REGEX_INPUT is not judged at all. Past either limit `fullmatch` raises RegexLimit:
    the decision fails closed, never "no match"."""

    __slots__ = ("fast", "safe")

    def __init__(self, pattern: str) -> None:
        self.fast = re.compile(pattern)
        self.safe = regex.compile(pattern, flags=regex.V0)

    def fullmatch(self, value: str) -> bool:
        if len(value) <= FAST_REGEX_INPUT:
            return self.fast.fullmatch(value) is not None
        if len(value) > MAX_REGEX_INPUT:
            raise RegexLimit(f"a regex condition was given {len(value)} characters "
                             f"(at most {MAX_REGEX_INPUT})")
        try:
            return self.safe.fullmatch(value, timeout=REGEX_TIME_LIMIT_S) is not None
        except TimeoutError:
            raise RegexLimit(f"a regex condition took over {REGEX_TIME_LIMIT_S}s") from None


def _c_regex(v: Any) -> Constraint:
    p = _need_str("regex", v)
    if len(p) > MAX_REGEX_LEN:
        raise ConditionError("bad_regex", f"regex longer than {MAX_REGEX_LEN} characters")
    try:
        rx = BoundedRegex(p)
    except (re.error, regex.error) as exc:
        raise ConditionError("bad_regex", f"invalid regex: {getattr(exc, 'msg', exc)}") from None
    return Constraint("regex", p, lambda x: isinstance(x, str) and rx.fullmatch(x))


def _c_cmp(op: str) -> Callable[[Any], Constraint]:
    def build(v: Any) -> Constraint:
        if not _is_number(v) or not math.isfinite(v):
            raise _bad(op, "expects a finite number")
        nums = _NUMBER_TYPES
        match: Callable[[Any], bool] = {
            "lt": lambda x: type(x) in nums and x < v,
            "le": lambda x: type(x) in nums and x <= v,
            "gt": lambda x: type(x) in nums and x > v,
            "ge": lambda x: type(x) in nums and x >= v,
        }[op]
        return Constraint(op, v, match)

    return build


def _entries(op: str, v: Any) -> tuple[tuple[bool, str], ...]:
    out = []
    for item in _need_str_list(op, v):
        entry = patterns.host_entry(item)
        if entry is None:
            raise _bad(op, f"malformed entry {item!r}")
        out.append(entry)
    return tuple(out)


def _c_host_in(v: Any) -> Constraint:
    entries = _entries("host_in", v)

    def match(x: Any) -> bool:
        host = patterns.url_host(x) if isinstance(x, str) else None
        return host is not None and any(patterns.host_matches(host, e) for e in entries)

    return Constraint("host_in", tuple(v), match, entries)


def _c_email(v: Any) -> Constraint:
    entries = _entries("email_domain_in", v)

    def match(x: Any) -> bool:
        dom = patterns.email_domain(x) if isinstance(x, str) else None
        return dom is not None and any(patterns.host_matches(dom, e) for e in entries)

    return Constraint("email_domain_in", tuple(v), match, entries)


def _c_len(op: str) -> Callable[[Any], Constraint]:
    def build(v: Any) -> Constraint:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _bad(op, "expects a non-negative integer")

        def match(x: Any) -> bool:
            if not isinstance(x, (str, list, tuple, Mapping)):
                return False
            return len(x) <= v if op == "max_len" else len(x) >= v

        return Constraint(op, v, match)

    return build


def _c_path_under(v: Any) -> Constraint:
    base = patterns.canonical_path(_need_str("path_under", v))
    if base is None:
        raise _bad("path_under", "expects a canonical absolute path (no '.', '..' or '//')")

    def match(x: Any) -> bool:
        p = patterns.canonical_path(x) if isinstance(x, str) else None
        return p is not None and path_within(p, base)

    return Constraint("path_under", v, match, base)


def _c_all(op: str) -> Callable[[Any], Constraint]:
    def build(v: Any) -> Constraint:
        if not isinstance(v, (list, tuple)) or not v:
            raise _bad(op, "expects a non-empty list of constraints")
        subs = tuple(compile_constraint(s) for s in v)
        if op == "all":
            return Constraint(op, _freeze(v), lambda x: all(c.test(x) for c in subs), subs)
        return Constraint(op, _freeze(v), lambda x: any(c.test(x) for c in subs), subs)

    return build


def _c_not(v: Any) -> Constraint:
    sub = compile_constraint(v)
    return Constraint("not", _freeze(v), lambda x: not sub.test(x), sub)


OPERATORS: Mapping[str, Callable[[Any], Constraint]] = {
    "eq": _c_eq,
    "in": _c_in,
    "prefix": _c_prefix,
    "glob": _c_glob,
    "regex": _c_regex,
    "lt": _c_cmp("lt"),
    "le": _c_cmp("le"),
    "gt": _c_cmp("gt"),
    "ge": _c_cmp("ge"),
    "host_in": _c_host_in,
    "email_domain_in": _c_email,
    "max_len": _c_len("max_len"),
    "min_len": _c_len("min_len"),
    "path_under": _c_path_under,
    "all": _c_all("all"),
    "any": _c_all("any"),
    "not": _c_not,
}


def compile_constraint(spec: Mapping[str, Any]) -> Constraint:
    """Compile one constraint mapping; raises ConditionError with a stable code."""
    if isinstance(spec, Constraint):
        return spec
    if not isinstance(spec, Mapping):
        raise ConditionError("bad_constraint", "a constraint is a mapping with one operator key")
    if len(spec) != 1:
        raise ConditionError(
            "bad_constraint", f"a constraint has exactly one operator key, got {len(spec)}"
        )
    ((op, operand),) = spec.items()
    build = OPERATORS.get(op) if isinstance(op, str) else None
    if build is None:
        raise ConditionError("unknown_operator", f"unknown operator {str(op)[:40]!r}")
    return build(operand)


# ---------------------------------------------------------------- argument addressing


def parse_key(key: str) -> tuple[str, ...]:
    """A plain name is one top-level key; '/a/0/b~1c' is an RFC 6901 JSON pointer."""
    if not isinstance(key, str) or key == "":
        raise ConditionError("bad_pointer", "an argument key is a non-empty string")
    if not key.startswith("/"):
        return (key,)
    tokens = []
    for raw in key[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise ConditionError("bad_pointer", f"invalid '~' escape in pointer {key[:80]!r}")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def resolve_tokens(doc: Any, tokens: tuple[str, ...]) -> tuple[bool, Any]:
    if len(tokens) == 1 and type(doc) is dict:  # fast path: a top-level argument
        cur = doc.get(tokens[0], _MISSING)
        return (False, None) if cur is _MISSING else (True, cur)
    cur = doc
    for tok in tokens:
        if type(cur) is dict or isinstance(cur, Mapping):
            cur = cur.get(tok, _MISSING)
            if cur is _MISSING:
                return False, None
        elif isinstance(cur, (list, tuple)):
            if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0") or not tok.isascii():
                return False, None
            idx = int(tok)
            if idx >= len(cur):
                return False, None
            cur = cur[idx]
        else:
            return False, None
    return True, cur


def resolve_arg(arguments: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) for a plain argument name or a JSON pointer; never raises."""
    try:
        tokens = parse_key(key)
    except ConditionError:
        return False, None
    return resolve_tokens(arguments, tokens)
