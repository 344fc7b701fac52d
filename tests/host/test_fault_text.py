"""A freeze-frame in text: every field of the snapshot has its label and unit."""

from __future__ import annotations

from host.fault_text import FREEZE_FIELDS, freeze_frame_lines
from host.fields import snapshot_fields
from protocol.records import SNAPSHOT_FIELDS, Snapshot


def test_every_snapshot_field_has_a_label_and_a_unit() -> None:
    freeze = snapshot_fields(Snapshot(*range(len(SNAPSHOT_FIELDS))))
    assert [key for key, _, _ in FREEZE_FIELDS] == list(freeze)


def test_a_field_from_a_newer_format_is_still_shown() -> None:
    freeze = {**snapshot_fields(Snapshot(*[0] * len(SNAPSHOT_FIELDS))), "oil_bar": 2.5}
    lines = freeze_frame_lines(freeze)
    assert lines[-1].split() == ["oil_bar", "2.5"]
    assert any(line.split()[:2] == ["active", "fault"] and line.endswith("none") for line in lines)
