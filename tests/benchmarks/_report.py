"""The rows the benchmark modules report, and the plots and page ``make bench`` writes from them.

A benchmark module reports each comparison it makes with :func:`ratio` (couchmapper's time,
a peer's time measured in the same run, and the goal for their ratio, if any); the rows are
collected in :data:`ROWS`. ``python -m tests.benchmarks`` then calls :func:`write_site`,
which writes into ``docs/_generated/bench/``:

* one SVG plot per figure name (``<figure>.svg``): a bar per row, the ratio
  couchmapper / peer on a log scale, the line 1.0 (as fast as the peer) and each goal;
* ``bench.md``, the Markdown that ``docs/benchmarks.md`` includes: each plot and a table of
  the times, ratios and goals, with the machine and the date of the run;
* ``bench.json``, the rows themselves: ``python -m tests.benchmarks --replot`` draws the
  plots and the page again from it without running anything.

Nothing here knows which benchmarks exist: a new module that calls :func:`ratio` with a new
figure name gets its own plot on the next ``make bench``.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

OUT = Path(__file__).resolve().parents[2] / "docs" / "_generated" / "bench"


class Ratio(NamedTuple):
    """One comparison: couchmapper's time against a peer's, measured in the same run.

    Attributes:
        figure: the plot the row belongs to (a short name: ``"documents"``, ``"engine"``).
        work: what was measured (``"field set on a persistent object"``).
        ours: couchmapper's seconds.
        peer: the peer's name (``"SQLAlchemy 2 ORM"``).
        theirs: the peer's seconds.
        goal: the ratio ``ours / theirs`` to stay at or under, if there is one.
    """

    figure: str
    work: str
    ours: float
    peer: str
    theirs: float
    goal: float | None = None

    @property
    def value(self) -> float:
        """``ours / theirs``: under 1.0 couchmapper is faster."""
        return self.ours / self.theirs

    @property
    def met(self) -> bool | None:
        """Whether the goal is met (None without a goal)."""
        return None if self.goal is None else self.value <= self.goal


ROWS: list[Ratio] = []
"""Every row reported in this run, in order."""


def ratio(
    figure: str, work: str, ours: float, peer: str, theirs: float, *, goal: float | None = None
) -> Ratio:
    """Report one comparison (seconds on both sides); returns the row."""
    if ours <= 0 or theirs <= 0:
        msg = f"{work} vs {peer}: times must be positive, got {ours} and {theirs}"
        raise ValueError(msg)
    row = Ratio(figure, work, ours, peer, theirs, goal)
    ROWS.append(row)
    return row


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "figure"


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("us", 1e6)):
        if value * scale >= 1:
            return f"{value * scale:,.3g} {unit}".replace("us", "\u00b5s")
    return f"{value * 1e9:,.3g} ns"


def plot(rows: Sequence[Ratio], path: Path, title: str) -> None:
    """Write one SVG: a horizontal bar per row (its ratio, log scale), 1.0 and the goals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    # Reproducible files: no date, fixed element ids; text as paths (no fonts needed).
    plt.rcParams.update({"svg.hashsalt": "couchmapper", "svg.fonttype": "path"})
    labels = [f"{row.work}\nvs {row.peer}" for row in rows]
    values = [row.value for row in rows]
    colors = [
        "#2e7d32" if (row.met if row.met is not None else row.value <= 1) else "#e65100"
        for row in rows
    ]
    height = 0.9 + 0.62 * len(rows)
    fig, ax = plt.subplots(figsize=(8.0, height), layout="constrained")
    positions = list(range(len(rows)))[::-1]
    ax.barh(positions, values, color=colors, height=0.55)
    ax.set_xscale("log")
    low = min([*values, *(r.goal for r in rows if r.goal)], default=1.0)
    high = max([*values, *(r.goal for r in rows if r.goal)], default=1.0)
    left, right = min(low, 1.0) / 2.5, max(high, 1.0) * 3.0
    ax.set_xlim(left, right)
    steps = [m * 10.0**e for e in range(-4, 5) for m in (1, 2, 5)]
    ax.xaxis.set_major_locator(FixedLocator([t for t in steps if left <= t <= right]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{t:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.axvline(1.0, color="#444", linewidth=1)
    for pos, row in zip(positions, rows, strict=True):
        ax.text(row.value * 1.08, pos, f"{row.value:.2f}x", va="center", fontsize=9)
        if row.goal is not None:
            ax.plot([row.goal, row.goal], [pos - 0.38, pos + 0.38], color="#c62828", lw=2)
    ax.set_yticks(positions, labels, fontsize=8.5)
    ax.set_xlabel(
        "time of couchmapper / time of the peer (log scale; under 1: couchmapper is faster)"
    )
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(axis="x", which="major", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def page(rows: Sequence[Ratio], images: dict[str, str], when: str, machine: str) -> str:
    """The Markdown fragment: each figure's plot and table."""
    lines = [
        f"Measured on {machine}, {when}. Bars: couchmapper's time divided by the peer's "
        "(green: the goal is met, or faster than the peer when there is no goal; orange: "
        "not); red ticks: the goals.",
        "",
    ]
    for figure, image in images.items():
        lines += [f"### {figure.capitalize()}", "", f"![{figure} ratios]({image})", ""]
        lines += [
            "| work | couchmapper | peer | peer's time | ratio | goal |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            if row.figure != figure:
                continue
            goal = (
                "" if row.goal is None else f"<= {row.goal:g}x ({'met' if row.met else 'not met'})"
            )
            lines.append(
                f"| {row.work} | {_seconds(row.ours)} | {row.peer} | {_seconds(row.theirs)} "
                f"| {row.value:.2f}x | {goal} |"
            )
        lines.append("")
    return "\n".join(lines)


def save(rows: Iterable[Ratio], out: Path = OUT, *, when: str | None = None) -> Path:
    """Write the rows and the time of the run to ``bench.json`` (see :func:`replot`)."""
    when = when or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
    data = {"when": when, "machine": machine, "rows": [row._asdict() for row in rows]}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def merged(rows: Iterable[Ratio], out: Path = OUT) -> list[Ratio]:
    """``rows`` plus the rows of ``bench.json`` whose figure ``rows`` does not report.

    A run of some modules (``python -m tests.benchmarks bench_engine``) then redraws its own
    figures and keeps the others of the last run, instead of deleting their plots.
    """
    rows = list(rows)
    path = out / "bench.json"
    if not path.exists():
        return rows
    figures = {row.figure for row in rows}
    kept = [Ratio(**row) for row in json.loads(path.read_text(encoding="utf-8"))["rows"]]
    return [*(row for row in kept if row.figure not in figures), *rows]


def replot(out: Path = OUT) -> list[Path]:
    """Draw the plots and ``bench.md`` again from ``bench.json`` (no benchmark is run)."""
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    rows = [Ratio(**row) for row in data["rows"]]
    return write_site(rows, out, when=data["when"], machine=data["machine"])


def write_site(
    rows: Iterable[Ratio], out: Path = OUT, *, when: str | None = None, machine: str | None = None
) -> list[Path]:
    """Write one plot per figure and ``bench.md`` into ``out``; the files written."""
    rows = list(rows)
    figures = list(dict.fromkeys(row.figure for row in rows))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.svg"):
        old.unlink()  # a figure no module reports any more
    written: list[Path] = []
    images: dict[str, str] = {}
    for figure in figures:
        path = out / f"{_slug(figure)}.svg"
        plot([r for r in rows if r.figure == figure], path, f"couchmapper vs peers: {figure}")
        images[figure] = path.name
        written.append(path)
    when = when or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine or (
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
    )
    text = page(rows, images, when, machine) if rows else "No benchmark reported a ratio.\n"
    (out / "bench.md").write_text(text, encoding="utf-8")
    written.append(out / "bench.md")
    return written
