"""What the adapters authorize: the values a tool receives, only when they are the values sent."""

import enum
import math

import pytest
from pydantic import BaseModel

from adapters.client import ArgumentsChanged, received_arguments


class Item(BaseModel):
    sku: str
    qty: int = 1


class Color(str, enum.Enum):
    red = "red"


@pytest.mark.parametrize("sent, received, authorized", [
    ({"amount": 5}, {"amount": 5}, {"amount": 5}),
    ({"amount": 5}, {"amount": 5.0}, {"amount": 5.0}),  # one number, authorized as received
    ({"iban": "x"}, {"iban": "x", "memo": ""}, {"iban": "x", "memo": ""}),  # a default
    ({"item": {"sku": "s"}}, {"item": Item(sku="s")}, {"item": {"sku": "s", "qty": 1}}),
    ({"tags": ["a"]}, {"tags": ("a",)}, {"tags": ["a"]}),
])
def test_unchanged_values_are_authorized_as_received(sent, received, authorized):
    out = received_arguments(sent, received)
    assert out == authorized
    assert [type(v) for v in out.values()] == [type(v) for v in authorized.values()]


@pytest.mark.parametrize("sent, received, names", [
    ({"amount": "5000"}, {"amount": 5000}, ["amount"]),  # a string read as a number
    ({"ok": "true"}, {"ok": True}, ["ok"]),
    ({"n": 1}, {"n": True}, ["n"]),
    ({"amount": 1.9}, {"amount": 1}, ["amount"]),
    ({"item": {"sku": "s", "qty": "2"}}, {"item": Item(sku="s", qty=2)}, ["item"]),
    ({"x": 1, "extra": 2}, {"x": 1}, ["extra"]),  # dropped by the schema
    ({"c": "red"}, {"c": Color.red}, ["c"]),  # not plain JSON
    ({"n": math.nan}, {"n": math.nan}, ["n"]),
])
def test_changed_values_are_refused(sent, received, names):
    with pytest.raises(ArgumentsChanged) as err:
        received_arguments(sent, received)
    assert err.value.code == "invalid_arguments" and list(err.value.names) == names
