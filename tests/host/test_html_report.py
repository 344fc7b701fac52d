"""`turbolog report`: one self-contained HTML file, opened in a real browser.

What a user would notice: the fleet report and the unit report are single
files with no script and nothing fetched from elsewhere; headless Chromium
opens them without a console error, every plot is there with a non-zero size,
and the page can be screenshot; the report states the policy, the confidence
and the definitions, and its tables carry the same numbers as ``turbolog fleet
--json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from firmware_sim.fleet import plan_fleet, simulate_fleet
from host.archive import Archive
from host.cli import main
from host.ingest import ingest_dir

from .chromium import EXECUTABLE, Chromium

PLOTS = {"crow-amsaa", "pareto", "mtbf", "age-bands", "availability"}


@pytest.fixture(scope="module")
def archive_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("report")
    simulate_fleet(plan_fleet(8, {"C30": 0.5, "C60": 0.5}, 5000, seed=12), out / "images", workers=1)
    with Archive.open(out / "archive.sqlite") as archive:
        ingest_dir(archive, out / "images")
    yield out / "archive.sqlite"


class _Page(HTMLParser):
    """What a self-contained page must not have, and the ids of its sections."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.fetches: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "section" and named.get("id"):
            self.sections.append(named["id"] or "")
        for key in ("src", "href", "xlink:href"):
            value = named.get(key) or ""
            if value and not value.startswith("#"):
                self.fetches.append(f"{tag} {key}={value}")


def _report(archive_path: Path, tmp_path: Path, *args: str) -> str:
    out = tmp_path / "report.html"
    assert main(["report", *args, "--out", str(out), "--db", str(archive_path)]) == 0
    return out.read_text(encoding="utf-8")


def test_the_fleet_report_is_self_contained_and_states_its_terms(archive_path: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    page = _report(archive_path, tmp_path, "--confidence", "0.95", "--failures", "equipment",
                   "--demonstrate", "8000")
    parsed = _Page()
    parsed.feed(page)
    assert parsed.scripts == 0 and parsed.fetches == []
    assert not re.search(r"url\(['\"]?(?!#)|@import", page)  # only references inside the page
    assert set(parsed.sections) >= PLOTS
    assert page.count("<svg") == len(PLOTS)
    assert "95% for every bound" in page and "equipment" in page and "Definitions" in page
    assert "Crow-AMSAA" in page and "MTBF &gt;= 8,000 h" in page
    capsys.readouterr()
    assert main(["fleet", "--json", "--confidence", "0.95", "--failures", "equipment",
                 "--db", str(archive_path)]) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert f"<td>all</td><td>{total['units']:,}</td>" in page
    assert f"<td>{total['exposure_hours']:,.0f}</td>" in page


@pytest.mark.slow
@pytest.mark.skipif(EXECUTABLE is None, reason="needs chromium (.ci/run installs it)")
@pytest.mark.parametrize("serial", [None, "C60-000005"])
def test_chromium_opens_the_report_without_errors_and_every_plot_has_a_size(
    archive_path: Path, tmp_path: Path, serial: str | None
) -> None:
    _report(archive_path, tmp_path, *([serial] if serial else []))
    with Chromium(tmp_path / "profile") as browser:
        browser.open((tmp_path / "report.html").as_uri())
        sizes = browser.evaluate(
            "JSON.stringify([...document.querySelectorAll('figure.plot svg')].map(s => "
            "[s.closest('section').id, s.getBoundingClientRect().width, s.getBoundingClientRect().height]))"
        )
        fetched = browser.evaluate("performance.getEntriesByType('resource').length")
        errors = browser.errors()
        browser.screenshot(tmp_path / "report.png")
        browser.evaluate("console.error('probe: the console is watched')")
        assert "probe: the console is watched" in browser.errors()  # the check above could fail
    plots = json.loads(sizes)
    assert {name for name, _, _ in plots} == ({"unit-plot"} if serial else PLOTS)
    assert all(width > 100 and height > 100 for _, width, height in plots), plots
    assert fetched == 0
    assert errors == []
    shot = (tmp_path / "report.png").read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000


def test_the_unit_report_holds_its_summary_and_plot(archive_path: Path, tmp_path: Path) -> None:
    page = _report(archive_path, tmp_path, "C30-000002", "--confidence", "80%")
    assert page.count("<svg") == 1 and "Unit report: C30-000002" in page and "80% for every bound" in page
    assert "ambient" in page and "Failures by code" in page


@pytest.mark.parametrize("argv, says", [
    (["C30-000002", "--model", "C60"], "are for the fleet report"),
    (["--model", "C99"], "--model: C99 is not in the archive"),
    (["--confidence", "100%"], "outside (0, 1)"),
])
def test_report_refusals_are_one_line_exit_2(
    archive_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        raise SystemExit(main(["report", *argv, "--out", str(tmp_path / "r.html"),
                               "--db", str(archive_path)]))
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
