"""One vocabulary: every column and key turbolog prints is a name docs/fields.md documents.

The table is read from docs/fields.md; the outputs come from the commands themselves, run in
this process against an emulated C60 (in-process line) whose log holds samples, events and a
scripted fault: the CSV header, the JSON lines' keys, every Parquet file's columns, and the keys
(at every depth) of ``faults``, ``summary``, ``fleet``, ``units``, ``info``, ``live``, ``codes``,
``pull``, ``ports``, ``export`` and ``plot`` with ``--json``, and the headings of the ``faults``,
``units``, ``codes`` and ``ports`` tables.  A name that is not documented fails here, so a new
one cannot slip in undocumented.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.pytest_plugin import Turbosim
from host.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "fields.md"
ROW = re.compile(r"^\| `(?P<name>[a-z0-9_]+)` \|(?P<unit>[^|]*)\|(?P<meaning>[^|]+)\|$")


def documented() -> dict[str, str]:
    """name -> unit of every row of the table under "## The table"."""
    section = DOC.read_text(encoding="utf-8").split("## The table", 1)[1].split("\n## ", 1)[0]
    rows = [ROW.match(line) for line in section.splitlines() if line.startswith("| `")]
    assert all(rows), "a row of docs/fields.md's table is not | `name` | unit | meaning |"
    names = [row["name"] for row in rows if row]
    assert len(names) == len(set(names)), "a name is documented twice"
    return {row["name"]: row["unit"].strip() for row in rows if row}


NAMES = documented()
MAPS = {name for name, unit in NAMES.items() if unit == "map"}


def keys(value: Any) -> set[str]:
    """Every key of a JSON value, at every depth, except inside maps (keyed by data)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            if key not in MAPS:
                found |= keys(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= keys(inner)
    return found


def run(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    assert status == 0, argv
    return out.getvalue()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """output -> the names it prints."""
    path = tmp_path_factory.mktemp("fields")
    db = str(path / "archive.sqlite")
    found: dict[str, set[str]] = {}
    with Turbosim(path) as launcher:
        unit = launcher.start(link="inproc", model="C60", history="60h", faults=["5005@30h"])
        found["pull --json"] = keys(json.loads(run("pull", unit.url, "--db", db, "--json")))
        found["info --json"] = keys(json.loads(run("info", unit.url, "--db", db, "--json")))
        found["live --json"] = keys(json.loads(run("live", unit.url, "--count", "1", "--json")))
    serial = unit.serial
    for command in (["faults", serial], ["summary", serial], ["fleet"], ["units"], ["codes"], ["ports"]):
        database = [] if command[0] in ("codes", "ports") else ["--db", db]
        found[f"{command[0]} --json"] = keys(json.loads(run(*command, *database, "--json")))
    header = run("export", serial, "--format", "csv", "--db", db).splitlines()[0]
    found["export csv"] = set(next(csv.reader([header])))
    lines = run("export", serial, "--format", "jsonl", "--db", db).splitlines()
    found["export jsonl"] = set().union(*(keys(json.loads(line)) for line in lines))
    report = run("export", serial, "--format", "csv", "--out", str(path / "u.csv"), "--db", db, "--json")
    found["export --json"] = keys(json.loads(report))
    if importlib.util.find_spec("matplotlib"):  # the extra turbolog[plot]
        picture = run("plot", serial, "--out", str(path / "u.svg"), "--db", db, "--json")
        found["plot --json"] = keys(json.loads(picture))
    for command in (["faults", serial, "--db", db], ["units", "--db", db], ["codes"], ["ports"]):
        found[f"{command[0]} table"] = table_headings(run(*command))
    if importlib.util.find_spec("pyarrow"):  # the extra turbolog[parquet]
        found["export parquet"], found["parquet timestamps"] = parquet_columns(db, path / "dataset")
    yield found


def table_headings(text: str) -> set[str]:
    """The names a text table heads its columns with: its first line, split at two spaces or more,
    a heading's spaces read as underscores (``operating hours`` is ``operating_hours``)."""
    lines = text.splitlines()
    if len(lines) < 2 or not set(lines[1]) <= {"-", " "}:
        return set()  # no table (ports on a machine with none)
    return {heading.replace(" ", "_") for heading in re.split(r"\s{2,}", lines[0].strip())}


def parquet_columns(db: str, out: Path) -> tuple[set[str], set[str]]:
    """Every column of every file of the Parquet dataset, and those of a timestamp type."""
    import pyarrow.parquet as parquet

    run("export", "--format", "parquet", "--out", str(out), "--db", db)
    schemas = [parquet.read_schema(file) for file in sorted(out.rglob("*.parquet"))]
    assert len(schemas) >= 4  # units.parquet, samples, faults, events
    fields = [field for schema in schemas for field in schema]
    return {field.name for field in fields}, {f.name for f in fields if str(f.type).startswith("timestamp")}


OUTPUTS: Sequence[str] = (
    "export csv", "export jsonl", "export parquet", "export --json", "faults --json", "summary --json",
    "fleet --json", "units --json", "info --json", "live --json", "codes --json", "pull --json",
    "ports --json", "plot --json", "faults table", "units table", "codes table",
)


@pytest.mark.parametrize("output", OUTPUTS)
def test_every_name_an_output_prints_is_documented(outputs: dict[str, set[str]], output: str) -> None:
    if output not in outputs:
        pytest.skip(f"{output} needs an extra that is not installed")
    assert outputs[output], f"{output} printed no names"
    assert sorted(outputs[output] - set(NAMES)) == [], f"{output}: names missing from docs/fields.md"


def test_the_ports_table_is_headed_by_documented_names(outputs: dict[str, set[str]]) -> None:
    assert outputs["ports table"] <= set(NAMES)  # empty where the machine has no serial port


def test_a_record_has_one_time_and_one_set_of_counters_everywhere(outputs: dict[str, set[str]]) -> None:
    records = ("export csv", "export jsonl", "faults --json", "live --json")
    assert all("time" in outputs[output] for output in records)
    text = ("export csv", "export jsonl", "faults --json", "live --json", "info --json", "summary --json",
            "fleet --json", "units --json")
    assert all("operating_hours" in outputs[output] for output in text)
    assert all(not {"operating_s", "energy_wh", "kwh", "time_utc"} & outputs[output] for output in text)


def test_a_moment_is_a_timestamp_in_parquet(outputs: dict[str, set[str]]) -> None:
    if "export parquet" not in outputs:
        pytest.skip("the Parquet export needs pyarrow (turbolog[parquet])")
    moments = {name for name, unit in NAMES.items() if unit == "ISO 8601 UTC"}
    assert outputs["parquet timestamps"] == moments & outputs["export parquet"] == {"time", "device_time"}


def test_wire_names_are_the_vocabulary_in_the_units_the_device_logs() -> None:
    """Every ``_xN`` (wire) name documents the name it scales, in that name's unit."""
    for name in NAMES:
        scaled = re.fullmatch(r"(.+)_x(10|100|1000)", name)
        if scaled:
            assert scaled[1] in NAMES, name
            assert NAMES[name].endswith(NAMES[scaled[1]]), name
