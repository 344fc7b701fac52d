"""The fleet inventory both sides share: TOML and CSV round trips, and every refusal naming its line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import InventoryError, ProtocolError
from protocol.inventory import SCHEMES, InventoryEntry, format_inventory, parse_inventory, same_unit_key

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20
).filter(lambda text: text == text.strip())
_URL = st.one_of(
    _TEXT.filter(lambda text: "://" not in text),
    st.builds(lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(sorted(SCHEMES)), _TEXT),
)
_ENTRY = st.builds(
    InventoryEntry,
    url=_URL,
    baud=st.none() | st.integers(min_value=1, max_value=10**7),
    serial=st.none() | _TEXT,
    group=st.none() | _TEXT,
    site=st.none() | _TEXT,
)
_INVENTORY = st.lists(_ENTRY, min_size=1, max_size=6, unique_by=lambda entry: same_unit_key(entry.url))


@pytest.mark.parametrize("kind", ["toml", "csv"])
@given(entries=_INVENTORY)
def test_every_inventory_reads_back_as_written(kind: str, entries: list[InventoryEntry]) -> None:
    assert parse_inventory(format_inventory(entries, kind=kind), kind=kind) == entries


def test_a_toml_inventory_as_a_user_writes_it() -> None:
    text = """# the north plant
[[unit]]
url = "socket://127.0.0.1:7000"
baud = 9600
serial = "C30-000001"
site = "plant-7"

[[unit]]
url = "/dev/ttyUSB0"
"""
    assert parse_inventory(text, kind="toml") == [
        InventoryEntry("socket://127.0.0.1:7000", 9600, "C30-000001", None, "plant-7"),
        InventoryEntry("/dev/ttyUSB0"),
    ]


def test_a_csv_inventory_with_some_columns_in_any_order() -> None:
    text = "\ufeffserial, url\nC60-000002, rfc2217://terminal:2001\n\n,turbosim://unit-1\n"
    assert parse_inventory(text, kind="csv") == [
        InventoryEntry("rfc2217://terminal:2001", serial="C60-000002"),
        InventoryEntry("turbosim://unit-1"),
    ]


def test_the_error_belongs_to_the_protocol_tree() -> None:
    assert issubclass(InventoryError, ProtocolError)


_BAD_TOML = [
    ('[[unit]]\nurl = "socket://a:1"\nbaud = \n', 3, "not TOML"),
    ('[[unit]]\nurl = "socket://a:1"\n\n[[unit]]\nbaud = 9600\nurl = "http://a:2"\n', 6, "unknown scheme http://"),
    ('[[unit]]\nurl = "socket://a:1"\nbaud = 0\n', 3, "bad baud 0"),
    ('[[unit]]\nurl = "socket://a:1"\nbaud = "fast"\n', 3, "bad baud 'fast'"),
    ('[[unit]]\nurl = "socket://a:1"\nbaud = true\n', 3, "bad baud True"),
    (
        '[[unit]]\nurl = "socket://a:1"\n[[unit]]\nurl = "SOCKET://a:1"\n',
        4,
        "duplicate URL SOCKET://a:1 (first on line 1)",
    ),
    ('[[unit]]\nurl = "socket://a:1"\nspeed = 9600\n', 3, "unknown key 'speed'"),
    ('[[unit]]\nbaud = 9600\n', 1, "without url"),
    ('units = 3\n', 1, "unknown top-level key 'units'"),
    ('unit = [{url = "socket://a:1"}]\n', 1, "as [[unit]] tables"),
    ('[[unit]]\nurl = ""\n', 2, "url is empty"),
    ('[[unit]]\nurl = "socket://a:1"\nserial = 7\n', 3, "serial must be text"),
    ("# nothing here\n", None, "no units"),
]


@pytest.mark.parametrize(("text", "line", "reason"), _BAD_TOML)
def test_a_bad_toml_inventory_is_refused_at_its_line(text: str, line: int | None, reason: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, kind="toml")
    assert caught.value.line == line
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"line {line}: " if line else "the inventory")


_BAD_CSV = [
    ("url,baud\nsocket://a:1,9600\nsocket://a:2,96O0\n", 3, "bad baud '96O0'"),
    ("url,baud\nsocket://a:1,-1\n", 2, "bad baud '-1'"),
    ("url,baud\nsocket://a:1\n", 2, "1 fields where the header names 2"),
    ("url,speed\nsocket://a:1,9600\n", 1, "unknown column 'speed'"),
    ("baud,serial\n9600,C30-1\n", 1, "no url column"),
    ("url,url\na,b\n", 1, "named twice"),
    ("url\n/dev/ttyS0\nftp://x\n", 3, "unknown scheme ftp://"),
    ("url\n/dev/ttyS0\n\n/dev/ttyS0\n", 4, "duplicate URL /dev/ttyS0 (first on line 2)"),
    ('url,serial\n/dev/ttyS0,"C30\n', 2, "not CSV"),
    ("url,serial\n,C30-1\n", 2, "no url"),
    ("url\n", None, "no units"),
]


@pytest.mark.parametrize(("text", "line", "reason"), _BAD_CSV)
def test_a_bad_csv_inventory_is_refused_at_its_line(text: str, line: int | None, reason: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, kind="csv")
    assert caught.value.line == line
    assert reason in str(caught.value)


def test_an_entry_refuses_what_no_inventory_may_hold() -> None:
    with pytest.raises(InventoryError, match="unknown scheme"):
        InventoryEntry("gopher://old:70")
    with pytest.raises(InventoryError, match="white space"):
        InventoryEntry("/dev/ttyS0", site=" north")
    with pytest.raises(InventoryError, match="control character"):
        InventoryEntry("/dev/tty\nS0")


def test_an_unknown_kind_is_the_callers_mistake() -> None:
    with pytest.raises(ValueError, match="unknown inventory kind 'yaml'"):
        parse_inventory("", kind="yaml")
