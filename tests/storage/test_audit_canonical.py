"""gateway.digest.canonical_json (a fast path through orjson) emits exactly the
RFC 8785 bytes of the reference implementation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rfc8785

from gateway.digest import canonical_json as _canonical  # the fast path under test

_scalars = (st.none() | st.booleans() | st.integers(-(2**60), 2**60)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


def _both(value):  # type: ignore[no-untyped-def]
    try:
        want = rfc8785.dumps(value)  # the reference implementation
    except Exception as exc:
        with pytest.raises(type(exc)):
            _canonical(value)
        return
    assert _canonical(value) == want


@settings(max_examples=2000, deadline=None)
@given(_json)
def test_matches_rfc8785(value):
    _both(value)


@pytest.mark.parametrize("value", [
    1.0, -0.0, 0.1, 1e-4, 9.99e-5, 1e-7, 1e15, 1e16, 1e21, 123456789.125, 2**53, 2**53 + 1,
    1800000000.123456, "\u2028\x7f\x00\x1f\"\\", {"\U0001F600": 1, "\uffff": 2, "a": 3},
    {"b": [1, 2.5, None, True], "a": {"z": "é", "y": ""}}, (1, 2), "\ud800", {1: 2},
])
def test_edge_cases(value):
    _both(value)
