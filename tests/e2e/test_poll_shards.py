"""Past one machine: two hosts each poll their --shard of one inventory into their own archive and
export it into one Parquet dataset (--part); DuckDB's fleet table from that dataset is exactly the
one from the export of a single archive that polled every unit.  The query is the one documented
in docs/fleet-polling.md, read from there."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.cli import main as turbolog_main
from host.poll import Shard
from protocol.inventory import InventoryEntry, format_inventory

pytestmark = pytest.mark.e2e
duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet-polling.md"
STILL = {"history": "200h", "no_pace": True, "extra_args": ["--speed", "0.000001"]}


def fleet_query(dataset: Path) -> str:
    (query,) = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return query.replace("/shared/fleet", str(dataset))


def turbolog(*argv: str) -> None:
    assert turbolog_main(list(argv)) == 0


def test_two_shards_exports_give_the_fleet_table_of_one_archive(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = ["C30", "C30", "C60", "C60", "C65", "C65", "C30", "C60"]
    units = [
        turbosim_unit(link="inproc", model=model, seed=seed, faults=["5005@100h"] * (seed % 2), **STILL)
        for seed, model in enumerate(models, start=1)
    ]
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(format_inventory([InventoryEntry(unit.url) for unit in units], kind="toml"))
    assert {Shard(1, 2).holds(unit.url) for unit in units} == {True, False}  # both shares hold units

    shared = tmp_path / "shared"
    for k in (1, 2):
        db = tmp_path / f"host-{k}.sqlite"
        turbolog("poll", str(inventory), "--shard", f"{k}/2", "--db", str(db))
        share = Shard(k, 2).name
        turbolog("export", "--format", "parquet", "--db", str(db), "--out", str(shared), "--part", share)
    whole = tmp_path / "whole.sqlite"
    turbolog("poll", str(inventory), "--db", str(whole), "--jobs", "4")
    one = tmp_path / "one"
    turbolog("export", "--format", "parquet", "--db", str(whole), "--out", str(one), "--part", "all")
    capsys.readouterr()

    assert sorted(path.name for path in (shared / "units").iterdir()) == [
        "part-shard-1-of-2.parquet", "part-shard-2-of-2.parquet",
    ]
    from_shards = duckdb.sql(fleet_query(shared)).fetchall()
    from_one = duckdb.sql(fleet_query(one)).fetchall()
    assert from_shards == from_one
    assert [row[0] for row in from_one] == ["C30", "C60", "C65"]
    assert sum(row[1] for row in from_one) == len(units)
    assert sum(row[7] for row in from_one) > 0  # the scripted trips are in the faults dataset

    samples = "read_parquet('{}/samples/*/*/*.parquet', hive_partitioning = true)"
    per_record = "SELECT serial, seq, crc FROM {} ORDER BY serial, seq"
    assert duckdb.sql(per_record.format(samples.format(shared))).fetchall() == \
        duckdb.sql(per_record.format(samples.format(one))).fetchall()


def test_a_share_of_the_same_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "empty.sqlite"
    inventory = tmp_path / "none.csv"
    inventory.write_text("url\nsocket://127.0.0.1:9\n")
    turbolog_main(["poll", str(inventory), "--db", str(db)])  # creates the archive; the unit fails
    turbolog("export", "--format", "parquet", "--db", str(db), "--out", str(tmp_path / "ds"), "--part", "a")
    capsys.readouterr()
    assert turbolog_main(["export", "--format", "parquet", "--db", str(db), "--out", str(tmp_path / "ds"),
                          "--part", "a"]) == 2
    assert "already holds a share named a" in capsys.readouterr().err
