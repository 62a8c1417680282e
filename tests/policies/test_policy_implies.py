"""Constraint.implies(): the cases the grant logic relies on, and soundness by sampling."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.conditions import Constraint, compile_constraint


def imp(a: dict, b: dict) -> bool:
    return compile_constraint(a).implies(compile_constraint(b))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"eq": "/w/a"}, {"path_under": "/w"}, True),
        ({"eq": "/x"}, {"path_under": "/w"}, False),
        ({"in": [1, 5]}, {"le": 5}, True),
        ({"in": [1, 6]}, {"le": 5}, False),
        ({"prefix": "/w/a"}, {"prefix": "/w"}, True),
        ({"prefix": "/w"}, {"prefix": "/w/a"}, False),
        ({"path_under": "/w/a"}, {"path_under": "/w"}, True),
        ({"path_under": "/w"}, {"path_under": "/w"}, True),
        ({"path_under": "/w2"}, {"path_under": "/w"}, False),
        ({"path_under": "/w"}, {"path_under": "/w/a"}, False),
        ({"path_under": "/w/a"}, {"prefix": "/w/"}, True),
        ({"path_under": "/w"}, {"prefix": "/w/"}, False),
        ({"prefix": "/w/"}, {"path_under": "/w"}, False),  # "/w/../etc" has that prefix
        ({"le": 100}, {"le": 1000}, True),
        ({"le": 1000}, {"le": 100}, False),
        ({"lt": 100}, {"le": 100}, True),
        ({"le": 100}, {"lt": 100}, False),
        ({"lt": 100}, {"lt": 100}, True),
        ({"ge": 5}, {"gt": 4}, True),
        ({"ge": 5}, {"gt": 5}, False),
        ({"gt": 5}, {"ge": 5}, True),
        ({"le": 5}, {"ge": 0}, False),
        ({"all": [{"gt": 0}, {"le": 50}]}, {"all": [{"ge": 0}, {"le": 100}]}, True),
        ({"all": [{"gt": 0}, {"le": 500}]}, {"all": [{"ge": 0}, {"le": 100}]}, False),
        ({"le": 50}, {"any": [{"le": 100}, {"eq": "x"}]}, True),
        ({"any": [{"le": 10}, {"in": [20]}]}, {"le": 20}, True),
        ({"not": {"in": ["a", "b"]}}, {"not": {"in": ["a"]}}, True),
        ({"not": {"in": ["a"]}}, {"not": {"in": ["a", "b"]}}, False),
        ({"host_in": ["a.example.com"]}, {"host_in": [".example.com"]}, True),
        ({"host_in": [".x.example.com"]}, {"host_in": ["*.example.com"]}, True),
        ({"host_in": [".example.com"]}, {"host_in": [".example.com", "b.com"]}, True),
        ({"host_in": ["example.com"]}, {"host_in": [".example.com"]}, False),
        ({"host_in": [".example.com"]}, {"host_in": ["a.example.com"]}, False),
        ({"email_domain_in": ["a.com"]}, {"email_domain_in": ["a.com", "b.com"]}, True),
        ({"email_domain_in": ["a.com", "c.com"]}, {"email_domain_in": ["a.com"]}, False),
        ({"max_len": 10}, {"max_len": 20}, True),
        ({"max_len": 20}, {"max_len": 10}, False),
        ({"min_len": 3}, {"min_len": 1}, True),
        ({"glob": "/w/*"}, {"glob": "/w/*"}, True),
        ({"glob": "/w/*"}, {"glob": "/w/**"}, False),  # conservative
        ({"regex": "a+"}, {"regex": "a+"}, True),
        ({"regex": "a"}, {"regex": "a+"}, False),  # conservative
        ({"prefix": "/w"}, {"le": 3}, False),
    ],
)
def test_implies_cases(a: dict, b: dict, expected: bool) -> None:
    assert imp(a, b) is expected


# --------------------------------------------------------------- soundness by sampling

paths = st.lists(st.sampled_from(["w", "a", "b", "..", ".", "", "w2", "é"]), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
hosts = st.lists(st.sampled_from(["example", "com", "a", "b", "x"]), min_size=1, max_size=4).map(".".join)
numbers = st.one_of(st.integers(-20, 20), st.floats(-20, 20, allow_nan=False), st.booleans())
values = st.one_of(
    numbers,
    paths,
    hosts.map(lambda h: f"https://{h}/p"),
    hosts.map(lambda h: f"u@{h}"),
    st.text(max_size=6),
    st.none(),
    st.lists(st.integers(), max_size=3),
)


def _constraints() -> st.SearchStrategy[dict]:
    num = st.integers(-10, 10)
    leaf = st.one_of(
        st.builds(lambda v: {"eq": v}, st.one_of(num, paths, st.booleans())),
        st.builds(lambda vs: {"in": vs}, st.lists(st.one_of(num, paths), min_size=1, max_size=3)),
        st.builds(lambda p: {"prefix": p}, paths),
        st.builds(lambda p: {"path_under": p}, st.sampled_from(["/", "/w", "/w/a", "/w2"])),
        st.builds(lambda op, n: {op: n}, st.sampled_from(["lt", "le", "gt", "ge"]), num),
        st.builds(lambda hs: {"host_in": hs}, st.lists(st.sampled_from(["example.com", ".example.com", "a.example.com", ".com"]), min_size=1, max_size=2)),
        st.builds(lambda hs: {"email_domain_in": hs}, st.lists(st.sampled_from(["example.com", ".example.com", "a.example.com"]), min_size=1, max_size=2)),
        st.builds(lambda n: {"max_len": n}, st.integers(0, 6)),
        st.builds(lambda n: {"min_len": n}, st.integers(0, 6)),
    )  # fmt: skip
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda c: {"not": c}, inner),
        ),
        max_leaves=4,
    )


@settings(max_examples=300, deadline=None, database=None)
@given(_constraints(), _constraints(), st.lists(values, min_size=1, max_size=25))
def test_implies_is_sound(a_spec: dict, b_spec: dict, samples: list) -> None:
    a, b = compile_constraint(a_spec), compile_constraint(b_spec)
    if a.implies(b):
        for v in samples:
            if a.test(v):
                assert b.test(v), (a_spec, b_spec, v)
    if a.op in ("eq", "in"):  # implication from finite sets is also complete
        finite = [a.as_dict()["eq"]] if a.op == "eq" else list(a.operand)
        assert a.implies(b) == all(b.test(v) for v in finite)


@settings(max_examples=200, deadline=None, database=None)
@given(_constraints(), st.lists(values, max_size=10))
def test_every_constraint_implies_itself_and_never_raises(spec: dict, samples: list) -> None:
    c: Constraint = compile_constraint(spec)
    assert c.implies(c)
    for v in samples:
        assert c.test(v) in (True, False)


@pytest.mark.parametrize("a, b", [({"eq": 1}, {"eq": True}), ({"eq": True}, {"eq": 1}),
                                  ({"eq": 0}, {"eq": False}), ({"in": [1]}, {"eq": True})])
def test_numbers_never_imply_booleans(a: dict, b: dict) -> None:
    """Found by test_implies_is_sound: Python's 1 == True made {"eq": 1} "equal" to
    {"eq": true}, so a scope of 1 passed for within a ceiling of true."""
    assert not compile_constraint(a).implies(compile_constraint(b))
    assert compile_constraint(a) != compile_constraint(b)
