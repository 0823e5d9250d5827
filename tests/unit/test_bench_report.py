"""The benchmark report: rows from any module become one plot per figure and a table page."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import _report
from benchmarks._report import Ratio, write_site

ROWS = [
    Ratio("documents", "field set", 2e-7, "SQLAlchemy 2 ORM", 8e-7, 0.4),
    Ratio("documents", "load 10,000 documents", 0.06, "pydantic v2", 0.05, 1.0),
    Ratio("engine", "bulk insert 10k", 0.45, "mongomock", 0.15),
]


def test_one_plot_per_figure_and_a_table_row_per_ratio(tmp_path: Path) -> None:
    """Two figure names give two SVGs; bench.md shows each row's ratio and goal verdict."""
    written = write_site(ROWS, tmp_path, when="2026-12-04 12:00 UTC")
    assert sorted(p.name for p in written) == ["bench.md", "documents.svg", "engine.svg"]
    assert (tmp_path / "engine.svg").read_text().lstrip().startswith("<?xml")
    page = (tmp_path / "bench.md").read_text()
    assert "![documents ratios](documents.svg)" in page
    assert "| field set | 200 ns | SQLAlchemy 2 ORM | 800 ns | 0.25x | <= 0.4x (met) |" in page
    assert "| 1.20x | <= 1x (not met) |" in page
    assert "| bulk insert 10k | 450 ms | mongomock | 150 ms | 3.00x |  |" in page
    assert "2026-12-04 12:00 UTC" in page


def test_plots_are_reproducible_and_stale_ones_removed(tmp_path: Path) -> None:
    """The same rows give the same bytes; a figure no longer reported loses its plot."""
    write_site(ROWS, tmp_path, when="x")
    first = (tmp_path / "documents.svg").read_bytes()
    write_site(ROWS[:2], tmp_path, when="x")
    assert (tmp_path / "documents.svg").read_bytes() == first
    assert not (tmp_path / "engine.svg").exists()


def test_no_rows_write_a_page_that_says_so(tmp_path: Path) -> None:
    """A run that reported nothing leaves a page saying so, and no plot."""
    assert [p.name for p in write_site([], tmp_path)] == ["bench.md"]
    assert (tmp_path / "bench.md").read_text() == "No benchmark reported a ratio.\n"


def test_ratio_records_rows_and_refuses_non_positive_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ratio() appends to ROWS; a zero time (a broken measurement) raises ValueError."""
    monkeypatch.setattr(_report, "ROWS", [])
    row = _report.ratio("x", "work", 1.0, "peer", 4.0, goal=0.5)
    assert [row] == _report.ROWS
    assert (row.value, row.met) == (0.25, True)
    with pytest.raises(ValueError, match="work vs peer: times must be positive"):
        _report.ratio("x", "work", 0.0, "peer", 1.0)


def test_replot_draws_the_same_site_from_the_saved_rows(tmp_path: Path) -> None:
    """save() keeps the rows in bench.json; replot() writes the same files from them."""
    _report.save(ROWS, tmp_path, when="2026-12-04 12:00 UTC")
    write_site(ROWS, tmp_path, when="2026-12-04 12:00 UTC", machine="a machine")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".json"}
    for path in tmp_path.glob("*.svg"):
        path.unlink()
    written = _report.replot(tmp_path)
    assert sorted(p.name for p in written) == sorted(before)
    after = {p.name: p.read_bytes() for p in written}
    assert after["documents.svg"] == before["documents.svg"]
    assert b"2026-12-04 12:00 UTC" in after["bench.md"]


def test_a_partial_run_keeps_the_figures_it_did_not_run(tmp_path: Path) -> None:
    """``merged``: new rows replace their figure's old rows; other figures stay as saved."""
    _report.save(ROWS, tmp_path, when="2026-12-04 12:00 UTC")
    rerun = [Ratio("engine", "bulk insert 10k", 0.1, "mongomock", 0.15)]
    rows = _report.merged(rerun, tmp_path)
    assert [r for r in rows if r.figure == "engine"] == rerun
    assert [r for r in rows if r.figure == "documents"] == ROWS[:2]
    assert _report.merged(rerun, tmp_path / "nothing-saved") == rerun
