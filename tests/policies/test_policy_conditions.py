"""Each constraint operator, its edge cases, and argument addressing."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.conditions import ConditionError, compile_constraint, resolve_arg
from policies.patterns import canonical_path


def sat(spec: dict, value: object) -> bool:
    return compile_constraint(spec).test(value)


def test_eq_is_type_strict() -> None:
    assert sat({"eq": 1}, 1) and sat({"eq": 1}, 1.0)
    assert not sat({"eq": 1}, True)
    assert not sat({"eq": True}, 1)
    assert sat({"eq": True}, True)
    assert not sat({"eq": "1"}, 1)
    assert sat({"eq": None}, None) and not sat({"eq": None}, "")
    assert sat({"eq": {"a": [1, "x"]}}, {"a": [1, "x"]})
    assert not sat({"eq": {"a": [1]}}, {"a": [True]})


def test_in_distinguishes_bools_from_numbers() -> None:
    c = compile_constraint({"in": ["EUR", 1, None]})
    assert c.test("EUR") and c.test(1) and c.test(1.0) and c.test(None)
    assert not c.test(True) and not c.test("eur") and not c.test(["EUR"]) and not c.test({"a": 1})


def test_prefix_compares_raw_strings() -> None:
    c = compile_constraint({"prefix": "/workspace"})
    assert c.test("/workspace/a") and c.test("/workspace2")  # raw: use path_under for paths
    assert not c.test("/etc") and not c.test(None) and not c.test(42)


def test_path_under_is_component_bounded_and_rejects_traversal() -> None:
    c = compile_constraint({"path_under": "/workspace"})
    assert c.test("/workspace") and c.test("/workspace/") and c.test("/workspace/a/b.txt")
    assert not c.test("/workspace2/a")
    assert not c.test("/workspace/../etc/passwd")
    assert not c.test("/workspace/a/../../etc")
    assert not c.test("/workspace/./a")
    assert not c.test("//workspace/a") and not c.test("/workspace//a")
    assert not c.test("workspace/a") and not c.test("/workspace/a\x00b")
    assert not c.test(["/workspace/a"])
    assert compile_constraint({"path_under": "/"}).test("/etc/passwd")
    assert compile_constraint({"path_under": "/data/é"}).test("/data/é/ü.txt")


def test_path_under_operand_must_be_canonical() -> None:
    for bad in ("/a/../b", "relative", "/a//b", 3):
        with pytest.raises(ConditionError) as e:
            compile_constraint({"path_under": bad})
        assert e.value.code == "bad_operand"


def test_glob_star_does_not_cross_slash_but_double_star_does() -> None:
    assert sat({"glob": "/workspace/*"}, "/workspace/a")
    assert not sat({"glob": "/workspace/*"}, "/workspace/a/b")
    assert sat({"glob": "/workspace/**"}, "/workspace/a/b")
    assert sat({"glob": "**/.env"}, ".env") and sat({"glob": "**/.env"}, "/srv/app/.env")
    assert not sat({"glob": "**/.env"}, "/srv/app/.envrc")
    assert sat({"glob": "/a/?.txt"}, "/a/b.txt") and not sat({"glob": "/a/?.txt"}, "/a//.txt")
    assert sat({"glob": "/a/[bc].txt"}, "/a/c.txt") and not sat({"glob": "/a/[!bc].txt"}, "/a/b.txt")
    assert sat({"glob": "fs.*"}, "fs.read_file") and not sat({"glob": "fs.*"}, "git.fs.x")
    assert sat({"glob": "a+b(c)"}, "a+b(c)")  # regex metacharacters are literal
    assert not sat({"glob": "*"}, 5)


def test_regex_fullmatch_and_limits() -> None:
    c = compile_constraint({"regex": "[A-Z]{2}[0-9]{2}"})
    assert c.test("DE89") and not c.test("xDE89") and not c.test("DE89x") and not c.test(89)
    with pytest.raises(ConditionError) as e:
        compile_constraint({"regex": "a" * 513})
    assert e.value.code == "bad_regex"
    with pytest.raises(ConditionError) as e:
        compile_constraint({"regex": "(unclosed"})
    assert e.value.code == "bad_regex"


@pytest.mark.parametrize(
    ("op", "bound", "yes", "no"),
    [
        ("lt", 10, [9, 9.99, -1], [10, 11]),
        ("le", 10, [10, 10.0], [10.01]),
        ("gt", 0, [0.01, 5], [0, -3]),
        ("ge", 0, [0], [-0.5]),
    ],
)
def test_numeric_bounds(op: str, bound: float, yes: list, no: list) -> None:
    c = compile_constraint({op: bound})
    assert all(c.test(v) for v in yes)
    assert not any(c.test(v) for v in no)
    assert not c.test(True) and not c.test(False) and not c.test("5") and not c.test(None)
    assert not c.test(float("nan"))


def test_numeric_operand_must_be_a_number() -> None:
    for bad in (True, "10", None, float("inf")):
        with pytest.raises(ConditionError) as e:
            compile_constraint({"le": bad})
        assert e.value.code == "bad_operand"


def test_host_in() -> None:
    c = compile_constraint({"host_in": ["example.com", ".docs.example.org", "*.corp.test"]})
    assert c.test("https://example.com/a") and c.test("https://EXAMPLE.com:8443/x")
    assert c.test("http://user:pw@example.com/") and c.test("https://example.com./")
    assert not c.test("https://www.example.com/")
    assert c.test("https://a.docs.example.org/") and not c.test("https://docs.example.org/")
    assert c.test("https://x.y.corp.test/") and not c.test("https://evilcorp.test/")
    assert not c.test("https://example.com.evil.net/")
    assert not c.test("https://evil.net/?u=https://example.com/")
    assert not c.test("https://evil.net\\@example.com/")
    assert not c.test("example.com/path") and not c.test("https://example.com:99999/")
    assert not c.test(None) and not c.test(["https://example.com"])


def test_host_in_idna_and_ipv6() -> None:
    c = compile_constraint({"host_in": ["bücher.example", "fd00:ec2::254"]})
    assert c.test("https://xn--bcher-kva.example/")
    assert c.test("https://BÜCHER.example/")
    assert c.test("http://[fd00:ec2:0::254]/latest")


def test_email_domain_in() -> None:
    c = compile_constraint({"email_domain_in": ["example.com", ".example.org"]})
    assert c.test("alice@example.com") and c.test("Bob@EXAMPLE.COM")
    assert c.test("carol@mail.example.org") and not c.test("carol@example.org")
    assert not c.test("eve@example.com.evil.net") and not c.test("eve@evil.net")
    assert not c.test("a@b@example.com") and not c.test("Alice <alice@example.com>")
    assert not c.test("alice@example.com, eve@evil.net") and not c.test("@example.com")
    assert not c.test(7)


def test_length_bounds() -> None:
    assert sat({"max_len": 3}, "abc") and not sat({"max_len": 3}, "abcd")
    assert sat({"max_len": 2}, [1, 2]) and sat({"min_len": 1}, {"a": 1})
    assert sat({"max_len": 2}, "éé") and not sat({"min_len": 1}, "")
    assert not sat({"max_len": 3}, 12) and not sat({"min_len": 0}, None)
    with pytest.raises(ConditionError):
        compile_constraint({"max_len": -1})
    with pytest.raises(ConditionError):
        compile_constraint({"max_len": True})


def test_combinators() -> None:
    c = compile_constraint({"all": [{"gt": 0}, {"le": 100}]})
    assert c.test(50) and not c.test(0) and not c.test(101)
    c = compile_constraint({"any": [{"eq": "a"}, {"prefix": "b"}]})
    assert c.test("a") and c.test("bz") and not c.test("c")
    c = compile_constraint({"not": {"in": ["x"]}})
    assert c.test("y") and not c.test("x")


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"equals": 1}, "unknown_operator"),
        ({"eq": 1, "in": [1]}, "bad_constraint"),
        ({}, "bad_constraint"),
        ("eq", "bad_constraint"),
        ({"in": "abc"}, "bad_operand"),
        ({"in": []}, "bad_operand"),
        ({"in": [[1]]}, "bad_operand"),
        ({"prefix": 3}, "bad_operand"),
        ({"host_in": ["https://x.com/"]}, "bad_operand"),
        ({"host_in": "x.com"}, "bad_operand"),
        ({"all": []}, "bad_operand"),
        ({"not": {"nope": 1}}, "unknown_operator"),
    ],
)
def test_compile_errors_have_codes(spec: object, code: str) -> None:
    with pytest.raises(ConditionError) as e:
        compile_constraint(spec)  # type: ignore[arg-type]
    assert e.value.code == code


def test_as_dict_round_trips() -> None:
    specs = [
        {"eq": {"a": [1]}}, {"in": ["a", 1]}, {"prefix": "/x"}, {"glob": "**/y"}, {"regex": "a+"},
        {"lt": 1}, {"ge": 2.5}, {"host_in": ["a.com"]}, {"email_domain_in": [".b.com"]},
        {"max_len": 3}, {"min_len": 1}, {"path_under": "/w"},
        {"all": [{"gt": 0}, {"not": {"eq": 3}}]}, {"any": [{"eq": "a"}]},
    ]  # fmt: skip
    for spec in specs:
        c = compile_constraint(spec)
        assert c.as_dict() == spec
        assert compile_constraint(c.as_dict()) == c


def test_resolve_arg_names_and_pointers() -> None:
    args = {"path": "/w", "to": [{"iban": "DE1"}], "a/b": 1, "m~n": 2, "": 3, "x": {"": 4}}
    assert resolve_arg(args, "path") == (True, "/w")
    assert resolve_arg(args, "/path") == (True, "/w")
    assert resolve_arg(args, "/to/0/iban") == (True, "DE1")
    assert resolve_arg(args, "/to/1/iban") == (False, None)
    assert resolve_arg(args, "/to/01/iban") == (False, None)
    assert resolve_arg(args, "/to/-") == (False, None)
    assert resolve_arg(args, "/a~1b") == (True, 1)
    assert resolve_arg(args, "/m~0n") == (True, 2)
    assert resolve_arg(args, "/x/") == (True, 4)
    assert resolve_arg(args, "/path/0") == (False, None)
    assert resolve_arg(args, "missing") == (False, None)
    assert resolve_arg(args, "/bad~2escape") == (False, None)
    assert resolve_arg({"n": None}, "n") == (True, None)


def test_missing_argument_never_satisfies() -> None:
    c = compile_constraint({"not": {"eq": "x"}})
    found, value = resolve_arg({}, "absent")
    assert not found  # callers treat "not found" as "constraint not satisfied"
    assert c.test(value)  # which is why absence must be checked before the value


def _reference_canonical(value: str) -> str | None:
    if not value.startswith("/") or "\x00" in value:
        return None
    if value == "/":
        return "/"
    body = value[1:]
    if body.endswith("/"):
        body = body[:-1]
    if any(part in ("", ".", "..") for part in body.split("/")):
        return None
    return "/" + body


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(["a", ".", "..", "", "/", "b.c", "..x", ".y", "\x00"]), max_size=7))
def test_canonical_paths_match_the_reference(parts: list[str]) -> None:
    for value in ("".join(parts), "/" + "/".join(parts)):
        got = canonical_path(value)
        assert got == _reference_canonical(value), value
        if got is not None:
            assert posixpath.normpath(got) == got or got == "/"
