"""The fault-code table in protocol is the one both the emulator and the reader use, and the spec lists it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from firmware_sim.faults import CATALOGUE
from protocol.enums import Severity, Subsystem
from protocol.fault_codes import FAULT_CODES, SUBSYSTEM_DIGIT, fault_label, lookup

ROOT = Path(__file__).resolve().parents[2]


def test_every_code_has_a_meaning_and_an_action() -> None:
    assert len(FAULT_CODES) >= 20
    for code, definition in FAULT_CODES.items():
        assert code == definition.code
        assert code // 1000 == SUBSYSTEM_DIGIT[definition.subsystem]
        assert definition.name and definition.description.endswith(".") and definition.action.endswith(".")
        assert definition.to_json()["severity"] == Severity(definition.severity).name
    assert {d.subsystem for d in FAULT_CODES.values()} == set(Subsystem)


def test_the_emulator_raises_exactly_the_protocol_codes_with_their_meaning() -> None:
    assert CATALOGUE.keys() == FAULT_CODES.keys()
    for code, entry in CATALOGUE.items():
        assert entry.meaning is FAULT_CODES[code]
        assert (entry.title, entry.subsystem, entry.severity, entry.flags) == (
            FAULT_CODES[code].name, FAULT_CODES[code].subsystem, FAULT_CODES[code].severity,
            FAULT_CODES[code].flags,
        )


def _string_literals(source: str) -> set[str]:
    """The string constants of *source* that are values (docstrings and other bare strings left out)."""
    tree = ast.parse(source)
    bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return {
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare
    }


@pytest.mark.parametrize("package", ["firmware_sim", "host"])
def test_no_package_keeps_its_own_copy_of_a_fault_name(package: str) -> None:
    """A name written out again elsewhere would be a second table, free to drift."""
    files = (ROOT / package).rglob("*.py")
    literals = set().union(*(_string_literals(path.read_text(encoding="utf-8")) for path in files))
    copied = [d.name for d in FAULT_CODES.values() if any(d.name in text for text in literals)]
    assert not copied


def test_the_reader_labels_codes_from_the_table() -> None:
    assert fault_label(5005) == "5005 TET over-temperature"
    assert fault_label(9999) == "9999 (unknown code)"
    assert lookup(9999) is None


def test_the_spec_lists_every_code() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    listed = {int(code) for code in re.findall(r"^\| (\d{4}) \| ", text, re.M)}
    assert listed == set(FAULT_CODES)
