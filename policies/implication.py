"""Conservative implication between compiled constraints: a.implies(b) is True only when every
value satisfying `a` also satisfies `b`. Unsure cases answer False (grants stay narrow).

Works on the attributes of `policies.conditions.Constraint` (op, operand, _data, test).
"""

from __future__ import annotations

from typing import Any

from policies import patterns

__all__ = ["constraint_implies", "path_within"]

_LOWER = ("gt", "ge")
_UPPER = ("lt", "le")


def _bound_implies(a_op: str, a: float, b_op: str, b: float) -> bool:
    if a_op in _UPPER and b_op in _UPPER:
        if b_op == "lt" and a_op == "le":
            return a < b
        return a <= b
    if a_op in _LOWER and b_op in _LOWER:
        if b_op == "gt" and a_op == "ge":
            return a > b
        return a >= b
    return False


def constraint_implies(a: Any, b: Any) -> bool:
    """Every value satisfying `a` satisfies `b` (conservative; see Constraint.implies)."""
    if a == b:
        return True
    if a.op == "eq":
        return b.test(a._data)
    if a.op == "in":
        return all(b.test(v) for v in a.operand)
    if b.op == "all":
        return all(constraint_implies(a, c) for c in b._data)
    if a.op == "any":
        return all(constraint_implies(c, b) for c in a._data)
    if a.op == "all":
        if any(constraint_implies(c, b) for c in a._data):
            return True
    if b.op == "any":
        return any(constraint_implies(a, c) for c in b._data)
    if a.op == "not" and b.op == "not":
        return constraint_implies(b._data, a._data)
    if a.op == "prefix" and b.op == "prefix":
        return a.operand.startswith(b.operand)
    if a.op == "path_under":
        if b.op == "path_under":
            return path_within(a._data, b._data)
        if b.op == "prefix":
            return a._data.startswith(b.operand)
    if a.op in _LOWER + _UPPER and b.op in _LOWER + _UPPER:
        return _bound_implies(a.op, a.operand, b.op, b.operand)
    if a.op == b.op and a.op in ("host_in", "email_domain_in"):
        return all(any(patterns.entry_within(x, y) for y in b._data) for x in a._data)
    if a.op == b.op == "max_len":
        return a.operand <= b.operand
    if a.op == b.op == "min_len":
        return a.operand >= b.operand
    return False


def path_within(inner: str, outer: str) -> bool:
    return outer == "/" or inner == outer or inner.startswith(outer + "/")
