"""Plots: a PNG is written headless, for long logs, empty logs, and refused where it cannot be."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from host import plot
from host.archive import Archive
from host.errors import OutputError, UnknownUnit, UsageError
from protocol.enums import Severity, Subsystem
from protocol.records import SNAPSHOT_FIELDS, FaultRecord, SampleRecord, Snapshot, encode_record, scan_records

T0 = 1_700_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def snapshot(seq: int) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(
        state=4, speed_rpm=60_000 + 30 * (seq % 1000), power_w=20 * (seq % 3000),
        tet1_c_x10=2800 + seq % 300, tet2_c_x10=2790 + seq % 300,
    )
    return Snapshot(**fields)


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        for serial in ("S1", "EMPTY"):
            opened.upsert_unit(
                serial, "C65", "fw", 1, first_seq=0, next_seq=0, capacity_records=10_000, device_time=T0,
                operating_s=0, starts=0, trips=0, energy_wh=0,
            )
        records = [SampleRecord(seq, T0 + 10 * seq, snapshot(seq)) for seq in range(3000)]
        for seq, severity in ((500, Severity.WARNING), (1500, Severity.FAST_SHUTDOWN), (2500, 9)):
            freeze = snapshot(seq)
            records[seq] = FaultRecord(seq, T0 + 10 * seq, 0x101, severity, Subsystem.ENGINE, 0, freeze)
        scanned, errors = scan_records(b"".join(encode_record(record) for record in records))
        assert not errors
        opened.store_records("S1", scanned)
        yield opened


def test_plot_writes_a_png(archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plot, "MAX_POINTS", 200)
    out = tmp_path / "s1.png"
    plot.plot_unit(archive, "S1", out)
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000


def test_a_unit_without_records_is_refused_and_nothing_written(archive: Archive, tmp_path: Path) -> None:
    """An empty picture would pass for a plot of a unit that did nothing."""
    out = tmp_path / "empty.png"
    with pytest.raises(UsageError, match="^unit EMPTY has no samples or faults archived yet: nothing to"):
        plot.plot_unit(archive, "EMPTY", str(out))
    assert not out.exists()


def test_a_symlink_stays_a_link_and_its_target_gets_the_picture(archive: Archive, tmp_path: Path) -> None:
    target = tmp_path / "plots" / "s1.png"
    target.parent.mkdir()
    target.write_bytes(b"last week's")
    target.chmod(0o644)
    link = tmp_path / "latest.png"
    link.symlink_to(target)
    plot.plot_unit(archive, "S1", link)
    assert link.is_symlink() and target.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(path.name for path in target.parent.iterdir()) == ["s1.png"]


def test_refusals(archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownUnit):
        plot.plot_unit(archive, "S2", tmp_path / "x.png")
    with pytest.raises(OutputError, match="cannot write"):
        plot.plot_unit(archive, "S1", tmp_path / "missing" / "x.png")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(UsageError, match="matplotlib"):
        plot.plot_unit(archive, "S1", tmp_path / "x.png")


def test_failures_are_labelled_with_their_code_and_named_in_a_key(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    drawn: list[str] = []
    savefig = Figure.savefig

    def spy(figure: Figure, *args: object, **kwargs: object) -> None:
        drawn.extend(t.get_text() for t in figure.findobj(Text))
        savefig(figure, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Figure, "savefig", spy)
    plot.unit_png(archive, "S1")
    assert drawn.count("257") == 2  # the two shutdown-class faults; the warning is not labelled
    assert "failures: 257 (unknown code) (2)" in drawn


def test_the_key_names_codes_from_protocols_table_most_frequent_first() -> None:
    assert plot.failure_key([4001, 5005, 5005]) == [
        "5005 TET over-temperature (2)", "4001 Fuel inlet pressure low (1)",
    ]


def test_warnings_are_dotted_failures_solid_and_ambient_has_its_panel(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    styles: dict[str, list[object]] = {}
    labels: list[str] = []
    savefig = Figure.savefig

    def spy(figure: Figure, *args: object, **kwargs: object) -> None:
        labels.extend(ax.get_ylabel() for ax in figure.axes)
        for lines in figure.findobj(LineCollection):
            styles.setdefault(str(lines.get_label()).split(" ")[0], []).extend(lines.get_linestyle())
        savefig(figure, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Figure, "savefig", spy)
    plot.unit_png(archive, "S1")
    assert "ambient (°C)" in labels
    solid = (0, None)
    assert all(style != solid for style in styles["WARNING"])
    assert all(style == solid for style in styles["FAST_SHUTDOWN"])
