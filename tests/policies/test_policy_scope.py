"""Grant scopes: compile, cover a call, and ⊆ a role's ceiling."""

from __future__ import annotations

import pytest

from policies.conditions import ConditionError
from policies.scope import compile_scope, scope_covers, scope_within


def test_covers_tool_exact_and_glob() -> None:
    (item,) = compile_scope([{"tool": "fs.*"}])
    assert item.covers_tool("fs.read_file") and item.covers_tool("fs.a.b")
    assert not item.covers_tool("git.fs.read_file")
    (exact,) = compile_scope([{"tool": "fs.read_file"}])
    assert exact.covers_tool("fs.read_file") and not exact.covers_tool("fs.read_files")


def test_check_reports_the_failing_key() -> None:
    (item,) = compile_scope([{"tool": "pay", "args": {"amount": {"le": 10}, "/to/0": {"eq": "a"}}}])
    assert item.check("pay", {"amount": 5, "to": ["a"]}) is None
    assert item.check("pay", {"amount": 50, "to": ["a"]}) == "amount"
    assert item.check("pay", {"amount": 5, "to": ["b"]}) == "/to/0"
    assert item.check("pay", {"to": ["a"]}) == "amount"  # missing argument fails
    assert item.check("other", {"amount": 5}) == ""


def test_scope_covers_codes() -> None:
    scope = compile_scope(
        [
            {"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace"}}},
            {"tool": "fs.list_directory"},
        ]
    )
    assert scope_covers(scope, "fs.read_file", {"path": "/workspace/a"}) == (True, "", "")
    assert scope_covers(scope, "fs.list_directory", {}) == (True, "", "")
    assert scope_covers(scope, "fs.read_file", {"path": "/etc/passwd"}) == (
        False, "argument_out_of_scope", "path",
    )  # fmt: skip
    assert scope_covers(scope, "fs.write_file", {"path": "/workspace/a"}) == (
        False, "tool_not_in_scope", "fs.write_file",
    )  # fmt: skip
    assert scope_covers((), "x", {})[1] == "tool_not_in_scope"


def test_any_item_may_cover() -> None:
    scope = compile_scope(
        [
            {"tool": "fs.read_file", "args": {"path": {"path_under": "/a"}}},
            {"tool": "fs.read_file", "args": {"path": {"path_under": "/b"}}},
        ]
    )
    assert scope_covers(scope, "fs.read_file", {"path": "/b/x"})[0]


def test_scope_within_ceiling() -> None:
    ceiling = compile_scope(
        [
            {"tool": "fs.*", "args": {"path": {"path_under": "/workspace"}}},
            {"tool": "pay.transfer", "args": {"amount": {"le": 1000}}},
            {"tool": "git.log"},
        ]
    )
    ok = compile_scope(
        [
            {"tool": "fs.read_file", "args": {"path": {"path_under": "/workspace/src"}}},
            {"tool": "fs.read_*", "args": {"path": {"eq": "/workspace/a"}}},
            {"tool": "pay.transfer", "args": {"amount": {"all": [{"gt": 0}, {"le": 100}]}, "memo": {"max_len": 5}}},
            {"tool": "git.log", "args": {"n": {"le": 5}}},
        ]
    )  # fmt: skip
    assert scope_within(ok, ceiling) == (True, "")
    assert scope_within(compile_scope([{"tool": "fs.read_file"}]), ceiling) == (
        False, "fs.read_file: path",
    )  # fmt: skip
    wide = compile_scope([{"tool": "pay.transfer", "args": {"amount": {"le": 5000}}}])
    assert scope_within(wide, ceiling) == (False, "pay.transfer: amount")
    assert scope_within(compile_scope([{"tool": "*"}]), ceiling) == (False, "*")
    assert scope_within(compile_scope([{"tool": "git.push"}]), ceiling) == (False, "git.push")
    assert scope_within((), ceiling) == (True, "")


def test_tool_glob_containment_is_conservative() -> None:
    (top,) = compile_scope([{"tool": "fs.*"}])
    for narrower in ("fs.read_*", "fs.*", "fs.x?", "fs.read_file"):
        assert top.implied_by(compile_scope([{"tool": narrower}])[0]), narrower
    for wider in ("*", "f*", "*.read_file", "git.*"):
        assert not top.implied_by(compile_scope([{"tool": wider}])[0]), wider
    (mid,) = compile_scope([{"tool": "fs.read_?ile"}])
    assert not mid.implied_by(compile_scope([{"tool": "fs.read_*"}])[0])
    assert mid.implied_by(compile_scope([{"tool": "fs.read_file"}])[0])


def test_args_keys_name_and_pointer_are_the_same_address() -> None:
    (top,) = compile_scope([{"tool": "t", "args": {"path": {"path_under": "/w"}}}])
    (req,) = compile_scope([{"tool": "t", "args": {"/path": {"path_under": "/w/a"}}}])
    assert top.implied_by(req)


@pytest.mark.parametrize(
    ("items", "code"),
    [
        ({"tool": "x"}, "invalid_scope"),
        ([{"tool": ""}], "invalid_scope"),
        ([{"name": "x"}], "invalid_scope"),
        ([{"tool": "x", "extra": 1}], "invalid_scope"),
        ([{"tool": "x", "args": ["path"]}], "invalid_scope"),
        ([{"tool": "x", "args": {"p": {"nope": 1}}}], "unknown_operator"),
        ([{"tool": "x", "args": {"p": {"le": "1"}}}], "bad_operand"),
        ([{"tool": "x", "args": {"/a~2": {"eq": 1}}}], "bad_pointer"),
        ([{"tool": "x", "args": {"p": {"eq": 1}, "/p": {"eq": 2}}}], "invalid_scope"),
    ],
)
def test_compile_scope_errors(items: object, code: str) -> None:
    with pytest.raises(ConditionError) as e:
        compile_scope(items)  # type: ignore[arg-type]
    assert e.value.code == code


def test_as_dict_round_trip_and_duck_typed_items() -> None:
    spec = [{"tool": "fs.read_file", "args": {"path": {"path_under": "/w"}}}]
    scope = compile_scope(spec)
    assert [i.as_dict() for i in scope] == spec

    class Item:  # like gateway.model.ScopeItem
        def as_dict(self) -> dict:
            return spec[0]

    assert compile_scope([Item()]) == scope
    assert compile_scope(scope) == scope
