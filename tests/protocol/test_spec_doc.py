"""docs/protocol.md against the code: its generated tables are current, and the generator fails
loudly rather than let the spec drift from protocol.formats."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from construct import Int8ul, Int16ul, Struct

from protocol import enums, formats
from protocol.messages import SCHEMA_FINGERPRINT

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
TOOL = ROOT / "tools" / "gen_protocol_doc.py"


@pytest.fixture(scope="module")
def generator() -> Iterator[ModuleType]:
    """tools/gen_protocol_doc.py, imported (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_protocol_doc", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_spec_tables_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_check_reports_a_stale_spec(tmp_path: Path) -> None:
    stale = tmp_path / "protocol.md"
    text = DOC.read_text(encoding="utf-8")
    stale.write_text(text.replace("| `speed_rpm` | u32 |", "| `speed_rpm` | u16 |"), encoding="utf-8")
    result = subprocess.run([sys.executable, str(TOOL), "--check", "--doc", str(stale)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "stale" in result.stderr


def test_rendering_twice_changes_nothing(generator: ModuleType) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert generator.render(text) == text


def test_placeholders_become_markers(generator: ModuleType) -> None:
    text = DOC.read_text(encoding="utf-8")
    for key, placeholder in generator.BLOCKS.items():
        text = re.sub(rf"<!-- generated:{key}\b.*?<!-- /generated:{key} -->", placeholder, text, flags=re.S)
    text = re.sub(r"<!-- generated:fingerprint -->.*?<!-- /generated:fingerprint -->", "`FINGERPRINT`", text)
    assert "RECORD_TABLES" in text and "`FINGERPRINT`" in text
    assert generator.render(text) == DOC.read_text(encoding="utf-8")


def test_spec_states_the_current_fingerprint() -> None:
    assert f"`0x{SCHEMA_FINGERPRINT:08X}`" in DOC.read_text(encoding="utf-8")


def test_spec_has_a_row_for_every_field_and_every_enum_member() -> None:
    text = DOC.read_text(encoding="utf-8")

    def leaves(fmt: Struct, prefix: str = "") -> list[str]:
        out = []
        for sub in fmt.subcons:
            inner = sub.subcon
            out += leaves(inner, f"{prefix}{sub.name}.") if isinstance(inner, Struct) else [prefix + sub.name]
        return out

    for fmt in [*formats.RECORD_BODIES.values(), *formats.MESSAGE_PAYLOADS.values()]:
        for name in leaves(fmt):
            assert f"| `{name}` |" in text or f"| `{name}." in text, name
    for cls in (enums.EngineState, enums.GridMode, enums.Severity, enums.Subsystem, enums.EventFlag,
                enums.RecordType, enums.EventKind, enums.ErrorCode, enums.AccessLevel):
        assert f"#### {cls.__name__}" in text
        for member in cls:
            if member.value:
                assert f"| `{member.name}` |" in text, f"{cls.__name__}.{member.name}"


def test_a_field_without_a_description_stops_the_generator(generator: ModuleType) -> None:
    with pytest.raises(generator.DocError, match="mystery_field"):
        generator.Walker("TEST").struct(Struct("mystery_field" / Int8ul), "", generator.Offset(0))


def test_a_description_no_field_uses_stops_the_generator(generator: ModuleType,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(generator.DESCRIPTIONS, "retired_field", "gone")
    with pytest.raises(generator.DocError, match="retired_field"):
        generator.render(DOC.read_text(encoding="utf-8"))


def test_a_new_field_changes_the_tables(generator: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(formats.MESSAGE_PAYLOADS, 0x83, Struct(*formats.CLOCK_RSP.subcons, "baud" / Int16ul))
    text = generator.render(DOC.read_text(encoding="utf-8"))
    assert "| 6 | `baud` | u16 |" in text


@pytest.mark.parametrize(("name", "unit", "scale"), [
    ("tet1_c_x10", "°C", "0.1"), ("ambient_pressure_kpa_x100", "kPa", "0.01"),
    ("grid_freq_hz_x1000", "Hz", "0.001"), ("speed_rpm", "rpm", "1"), ("energy_wh", "Wh", "1"),
    ("power_w", "W", "1"), ("fuel_valve_pct_x10", "%", "0.1"), ("dc_bus_v_x10", "V", "0.1"),
    ("operating_s", "s", "1"), ("starts", "", ""), ("request_seq", "", ""),
])
def test_units_and_scales_come_from_the_name(generator: ModuleType, name: str, unit: str, scale: str) -> None:
    assert generator.unit_and_scale(name) == (unit, scale)


def test_a_scale_without_a_unit_stops_the_generator(generator: ModuleType) -> None:
    with pytest.raises(generator.DocError):
        generator.unit_and_scale("mystery_x10")
