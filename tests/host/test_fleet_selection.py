"""`turbolog fleet` filtered, tested, demonstrated: figures checked against the flash images themselves.

What a user would notice: the archive knows each ingested unit's site, duty and
commissioning date from its sidecar; ``--model``, ``--site``, ``--duty``,
``--cohort`` keep exactly those units; ``--since``/``--until``/``--as-of`` keep
exactly the records of that window (hours and failures read back from the
images agree); ``--demonstrate`` says what the chi-square bound says;
``--growth`` fits what the images' failure ages say; bad input is one line and
exit 2, and a filter that selects nothing is an empty table and exit 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scipy import stats

from firmware_sim.flash import NorFlash
from firmware_sim.fleet import UnitPlan, plan_fleet, simulate_fleet
from firmware_sim.logstore import LogStore
from host.archive import Archive
from host.cli import main
from host.fleet_report import fleet_table
from host.growth import SystemHistory, crow_amsaa
from host.ingest import ingest_dir
from host.selection import Selection
from protocol.enums import Severity
from protocol.records import FaultRecord, SampleRecord, decode_record

MIX = {"C30": 0.5, "C60": 0.5}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[UnitPlan], Path]]:
    out = tmp_path_factory.mktemp("selection")
    plans = plan_fleet(10, MIX, 4000, seed=8)
    simulate_fleet(plans, out / "images", workers=1)
    with Archive.open(out / "archive.sqlite") as archive:
        ingest_dir(archive, out / "images")
    yield out / "images", plans, out / "archive.sqlite"


def _records(images: Path, serial: str) -> list[object]:
    with NorFlash.open(images / f"{serial}.img") as flash:
        store = LogStore(flash)
        return [decode_record(raw) for raw in store.iter_raw(store.first_seq, store.next_seq)]


def _counters(record: object) -> int | None:
    if isinstance(record, SampleRecord):
        return record.snapshot.operating_s
    if isinstance(record, FaultRecord):
        return record.freeze.operating_s
    return None


def _window_figures(images: Path, serials: list[str], since: int, until: int) -> tuple[float, float, int]:
    """(lifetime hours at the last counter record in the window, exposure hours, trips) summed
    over *serials*, read from the images."""
    lifetime = exposure = 0.0
    trips = 0
    for serial in serials:
        inside = [r for r in _records(images, serial) if since <= r.timestamp <= until]  # type: ignore[attr-defined]
        counted = [c for c in map(_counters, inside) if c is not None]
        if counted:
            lifetime += counted[-1] / 3600
            exposure += (counted[-1] - counted[0]) / 3600
        trips += sum(isinstance(r, FaultRecord) and r.severity >= Severity.NORMAL_SHUTDOWN for r in inside)
    return lifetime, exposure, trips


def _day(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_ingest_records_each_units_profile(fleet: tuple[Path, list[UnitPlan], Path]) -> None:
    _, plans, db = fleet
    with Archive.open(db, readonly=True) as archive:
        rows = {row[0]: row[1:] for row in archive.query("SELECT * FROM unit_profiles")}
    assert rows == {plan.serial: (plan.site, plan.duty, plan.commissioned, plan.shipped) for plan in plans}


def test_filters_keep_exactly_the_matching_units(fleet: tuple[Path, list[UnitPlan], Path]) -> None:
    images, plans, db = fleet
    site, duty = plans[0].site, plans[0].duty
    year = datetime.fromtimestamp(plans[0].commissioned, UTC).year
    with Archive.open(db, readonly=True) as archive:
        whole = fleet_table(archive)
        for selection, wanted in (
            (Selection(models=frozenset({"C60"})), [p for p in plans if p.model == "C60"]),
            (Selection(sites=frozenset({site})), [p for p in plans if p.site == site]),
            (Selection(duties=frozenset({duty})), [p for p in plans if p.duty == duty]),
            (Selection(cohorts=frozenset({year})),
             [p for p in plans if datetime.fromtimestamp(p.commissioned, UTC).year == year]),
        ):
            report = fleet_table(archive, selection=selection)
            assert sorted(unit.serial for unit in report.units) == sorted(p.serial for p in wanted)
            kept = [unit for unit in whole.units if unit.serial in {p.serial for p in wanted}]
            assert report.total.failures == sum(unit.failures for unit in kept)
            assert report.total.exposure_hours == pytest.approx(sum(unit.exposure_hours for unit in kept))
        c60 = next(model for model in whole.models if model.model == "C60")
        only = fleet_table(archive, selection=Selection(models=frozenset({"C60"}))).total
        assert (only.units, only.failures) == (c60.units, c60.failures)
        assert only.operating_hours == c60.operating_hours


def test_a_window_keeps_exactly_its_records(fleet: tuple[Path, list[UnitPlan], Path]) -> None:
    images, plans, db = fleet
    starts = sorted(plan.commissioned for plan in plans)
    ends = sorted(plan.as_of for plan in plans)
    since, until = starts[len(starts) // 2], ends[len(ends) // 2]
    assert since < until
    with Archive.open(db, readonly=True) as archive:
        for window in (Selection(since=since, until=until), Selection(as_of=until), Selection(since=since)):
            report = fleet_table(archive, selection=window)
            low = window.since if window.since is not None else 0
            high = window.end if window.end is not None else 2**62
            lifetime, exposure, trips = _window_figures(images, [p.serial for p in plans], low, high)
            assert report.total.operating_hours == pytest.approx(lifetime)
            assert report.total.exposure_hours == pytest.approx(exposure)
            assert report.total.failures == trips


def test_growth_fits_the_failure_ages_of_the_images(
    fleet: tuple[Path, list[UnitPlan], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    images, plans, db = fleet
    histories = []
    for plan in plans:
        records = _records(images, plan.serial)
        counted = [c / 3600 for c in map(_counters, records) if c is not None]
        ages = tuple(r.freeze.operating_s / 3600 for r in records
                     if isinstance(r, FaultRecord) and r.severity >= Severity.NORMAL_SHUTDOWN)
        if counted and counted[-1] > counted[0]:
            histories.append(SystemHistory(counted[0], counted[-1], ages))
    expected = crow_amsaa(histories, 0.8)
    assert expected is not None
    assert main(["fleet", "--growth", "--confidence", "80%", "--json", "--db", str(db)]) == 0
    document = json.loads(capsys.readouterr().out)
    overall = document["growth"][-1]
    assert overall["model"] == "all" and overall["confidence"] == 0.8
    assert overall["crow_amsaa"]["beta"] == pytest.approx(expected.beta, abs=1e-5)
    assert overall["crow_amsaa"]["beta_interval"][0] == pytest.approx(expected.beta_low, abs=1e-5)
    assert overall["trend"]["verdict"] in {"improving", "steady", "wearing out"}
    assert sum(band["failures"] for band in overall["age_bands"]) == expected.failures
    assert document["confidence"] == 0.8 and document["failures_policy"]["name"] == "trips"
    assert main(["fleet", "--growth", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "Crow-AMSAA" in text and "verdict" in text and "Weibull" in text


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95])
def test_demonstrate_says_what_the_chi_square_bound_says(
    fleet: tuple[Path, list[UnitPlan], Path], capsys: pytest.CaptureFixture[str], confidence: float
) -> None:
    _, _, db = fleet
    argv = ["fleet", "--demonstrate", "8000", "--model", "C60", "--confidence", str(confidence), "--json"]
    assert main([*argv, "--db", str(db)]) == 0
    document = json.loads(capsys.readouterr().out)
    proof = document["demonstration"]
    hours, failures = proof["exposure_hours"], proof["failures"]
    (c60,) = document["models"]
    assert (hours, failures) == (c60["exposure_hours"], c60["failures"])
    lower = 2 * hours / stats.chi2.ppf(confidence, 2 * failures + 2)
    assert proof["mtbf_lower"] == pytest.approx(lower, rel=1e-6)
    assert proof["demonstrated"] is bool(lower >= 8000)
    needed = max(0.0, 8000 * stats.chi2.ppf(confidence, 2 * failures + 2) / 2 - hours)
    assert proof["hours_needed_at_zero_failures"] == pytest.approx(needed, rel=1e-6, abs=1e-3)
    assert document["confidence"] == confidence
    assert document["selection"]["models"] == ["C60"]


def test_text_tables_state_policy_confidence_and_exposure(
    fleet: tuple[Path, list[UnitPlan], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, db = fleet
    assert main(["fleet", "--demonstrate", "1e9", "--confidence", "0.95", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "failures (trips)" in text and "95% confidence" in text and "exposure h" in text
    assert "NOT demonstrated" in text and "more operating hours without a failure" in text


@pytest.mark.parametrize("argv, says", [
    (["--model", "C99"], "--model: C99 is not in the archive"),
    (["--site", "moon"], "--site: moon is not in the archive"),
    (["--duty", "sometimes"], "--duty: sometimes is not in the archive"),
    (["--since", "2006-01-01", "--until", "2005-01-01"], "before --since"),
    (["--demonstrate", "0"], "must be above 0"),
    (["--demonstrate", "-5"], "must be above 0"),
    (["--confidence", "1.5"], "outside (0, 1)"),
    (["--confidence", "0"], "outside (0, 1)"),
    (["--failures", "sometimes"], "neither a policy"),
    (["--cohort", "2003-2001"], "ends before it starts"),
])
def test_bad_input_is_one_line_and_exit_2(
    fleet: tuple[Path, list[UnitPlan], Path], capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    _, _, db = fleet
    with pytest.raises(SystemExit) as exit_:
        code = main(["fleet", *argv, "--db", str(db)])
        raise SystemExit(code)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "Traceback" not in err


def test_a_filter_that_selects_nothing_is_an_empty_table(
    fleet: tuple[Path, list[UnitPlan], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, db = fleet
    assert main(["fleet", "--cohort", "1990", "--db", str(db)]) == 0
    assert "no unit matches the selection" in capsys.readouterr().out
    assert main(["fleet", "--as-of", "1990-01-01", "--json", "--growth", "--db", str(db)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["total"]["units"] == 0 and document["growth"][-1]["crow_amsaa"] is None


def test_summary_shows_its_bounds_at_the_confidence_asked_for(
    fleet: tuple[Path, list[UnitPlan], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, plans, db = fleet
    serial = plans[0].serial
    assert main(["summary", serial, "--confidence", "0.95", "--json", "--db", str(db)]) == 0
    document = json.loads(capsys.readouterr().out)
    hours, failures = document["exposure_hours"], document["failures"]
    assert document["confidence"] == 0.95
    for key, confidence in (("mtbf_lower", 0.95), ("mtbf_lower90", 0.90)):
        expected = 2 * hours / stats.chi2.ppf(confidence, 2 * failures + 2)
        assert document[key] == pytest.approx(expected, rel=1e-6)
    assert main(["summary", serial, "--confidence", "95%", "--db", str(db)]) == 0
    assert "95 %" in capsys.readouterr().out


def test_fleet_growth_fits_failures_against_the_fleets_cumulative_hours(
    fleet: tuple[Path, list[UnitPlan], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each failure at the hours the whole fleet had run by its time, read exactly from the images
    (turbolog interpolates between a few samples of each log: the fits agree to 3 %)."""
    images, plans, db = fleet
    logs = {plan.serial: _records(images, plan.serial) for plan in plans}

    def fleet_hours(at: int) -> float:
        total = 0.0
        for records in logs.values():
            counted = [(r.timestamp, c) for r in records if (c := _counters(r)) is not None]  # type: ignore[attr-defined]
            before = [c for t, c in counted if t <= at]
            total += (before[-1] - counted[0][1]) / 3600 if before else 0.0
        return total

    failures = sorted(r.timestamp for records in logs.values() for r in records  # type: ignore[attr-defined]
                      if isinstance(r, FaultRecord) and r.severity >= Severity.NORMAL_SHUTDOWN)
    end = max(r.timestamp for records in logs.values() for r in records)  # type: ignore[attr-defined]
    expected = crow_amsaa([SystemHistory(0.0, fleet_hours(end), tuple(fleet_hours(t) for t in failures))])
    assert expected is not None
    assert main(["fleet", "--growth", "--json", "--db", str(db)]) == 0
    fitted = json.loads(capsys.readouterr().out)["growth"][-1]["crow_amsaa_fleet_hours"]
    assert fitted["failures"] == expected.failures and fitted["interval_method"] == "chi-square (exact)"
    assert fitted["exposure_hours"] == pytest.approx(expected.exposure_hours, rel=1e-3)
    assert fitted["beta"] == pytest.approx(expected.beta, rel=0.03)
