"""`turbolog info` tells what is waiting before a pull: the records not yet archived, their size, and how
long a pull takes at the line's baud rate.

Figures held: with no archive the whole log is waiting, and the archive file is not created; the bytes the
estimate says the device will send are within 2 % of what a pull of an emulated unit then carries; after the
pull nothing is waiting; with part of the log archived only the rest is counted, at the archived records'
mean size; the estimate's frame size is the protocol's (a frame encoded by protocol.framing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.archive import Archive
from host.cli import main
from host.pending import framed, line_bytes, pending
from protocol.enums import MsgType
from protocol.framing import encode_frame
from protocol.records import scan_records
from tests.host.loopback import make_records


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_info_before_and_after_a_pull(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unit = turbosim_unit(link="inproc", model="C60", history="300h", no_pace=True)
    db = tmp_path / "archive.sqlite"

    status, out, _ = run(["info", unit.url, "--db", str(db), "--json"], capsys)
    assert status == 0
    before = json.loads(out)
    assert before["not_archived"] == before["records"] > 1000
    assert before["not_archived_bytes"] == 70 * before["records"]
    assert before["pull_estimate_s"] == round(before["line_bytes"] * 10 / 115_200, 1)
    assert not db.exists()

    status, out, _ = run(["info", unit.url, "--db", str(db)], capsys)
    assert status == 0
    waiting = out.splitlines()[-1]
    assert waiting.startswith("not archived") and f"{before['records']:,} records, about" in waiting
    assert re.search(r"a pull takes about \d\d:\d\d \(min:s\) at 115,200 baud, if most are samples$", waiting)

    status, out, _ = run(["pull", unit.url, "--db", str(db), "--json"], capsys)
    assert status == 0
    pulled = json.loads(out)
    assert pulled["added"] >= before["records"]
    assert abs(pulled["bytes"] - before["line_bytes"]) <= 0.02 * pulled["bytes"], (pulled, before)

    status, out, _ = run(["info", unit.url, "--db", str(db), "--json"], capsys)
    after = json.loads(out)
    assert after["records"] - pulled["added"] == after["not_archived"]  # what the unit logged since
    status, out, _ = run(["info", unit.url, "--db", str(db)], capsys)
    if after["records"] == pulled["added"]:
        assert out.splitlines()[-1].endswith("none: the archive holds the unit's whole log")


def test_only_what_the_archive_lacks_is_waiting(tmp_path: Path) -> None:
    raws = make_records(150)
    with Archive.open(tmp_path / "archive.sqlite") as archive:
        archive.upsert_unit(
            "TL-0001",
            "C65",
            "fw",
            0,
            first_seq=0,
            next_seq=100,
            capacity_records=1000,
            device_time=0,
            operating_s=0,
            starts=0,
            trips=0,
            energy_wh=0,
        )
        archive.store_records("TL-0001", scan_records(b"".join(raws[:100]))[0])
        mean = sum(map(len, raws[:100])) / 100

        waiting = pending(archive, "TL-0001", 0, 150, 57_600, 2048)
        assert waiting.records == 50 and waiting.archived
        assert waiting.record_size == pytest.approx(mean)
        assert waiting.record_bytes == round(50 * mean)
        assert waiting.seconds == pytest.approx(line_bytes(50, mean, 2048) * 10 / 57_600)

        unknown = pending(archive, "C30-000009", 10, 30, 57_600, 2048)
        assert unknown.records == 20 and not unknown.archived and unknown.record_size == 70
    assert pending(None, "TL-0001", 0, 0, 9600, 2048).seconds == 0


def test_a_frames_size_on_the_line_is_the_protocols() -> None:
    for size in (18, 954, 1014):
        payload = bytes((i % 255) + 1 for i in range(size))  # no zero: COBS adds its most
        assert framed(size) == len(encode_frame(MsgType.RECORDS, 7, payload))
