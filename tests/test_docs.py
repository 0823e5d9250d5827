"""The Python examples of README.md and docs/*.md run, in order, one namespace per page.

Each page runs in its own interpreter (``python tests/test_docs.py PAGE``), as a reader would
run it: its classes register type names and its receivers connect to couchmapper's signals,
and none of that may leak into the other pages or the rest of the suite. Every example uses
the embedded memory backend. A block that cannot run (it needs a real CouchDB server) is
marked with ``<!-- no-run -->`` on the line right before its fence; those are counted below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NO_RUN = "<!-- no-run -->"

# Pages of the documentation site that hold no Python example (the API reference is
# generated from docstrings; the benchmark page includes the tables `make bench` writes).
WITHOUT_EXAMPLES = {"docs/api.md", "docs/benchmarks.md"}

# Blocks marked <!-- no-run --> per page; keep this short (they are not checked).
EXPECTED_NO_RUN = {"docs/backends.md": 1}

_FENCE = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def python_blocks(text: str) -> list[tuple[int, bool, str]]:
    """Every ```python block of a page: (first code line, marked no-run, code)."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, before.strip() == NO_RUN, match.group(1)))
    return blocks


def run_page(page: Path) -> None:
    """Execute the runnable blocks of ``page`` in order, in one namespace."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, no_run, code in python_blocks(page.read_text(encoding="utf-8")):
        if not no_run:
            # Blank lines in front keep tracebacks pointing at the page's own line numbers;
            # dont_inherit: this module's `from __future__ import annotations` must not apply.
            source = "\n" * (line - 1) + code
            exec(compile(source, str(page), "exec", dont_inherit=True), namespace)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_page_examples_run(page: Path) -> None:
    """Every unmarked Python block of the page runs, in order, on the memory backend."""
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    if _name(page) in WITHOUT_EXAMPLES:
        assert not blocks, f"{_name(page)} has examples now: take it out of WITHOUT_EXAMPLES"
        return
    assert any(not no_run for _, no_run, _ in blocks), f"{_name(page)} has no runnable example"
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    done = subprocess.run(
        [sys.executable, __file__, str(page)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"{_name(page)}: an example failed\n{done.stderr}"


def test_no_run_blocks_are_few_and_marked() -> None:
    """Only the expected blocks skip, and every no-run marker sits right above a block."""
    found: dict[str, int] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        skipped = sum(1 for _, no_run, _ in python_blocks(text) if no_run)
        if skipped:
            found[_name(page)] = skipped
        assert text.count(NO_RUN) == skipped, f"{_name(page)}: a {NO_RUN} marks no python block"
    assert found == EXPECTED_NO_RUN


def _anchors(page: Path) -> set[str]:
    """The GitHub anchors of a page's headings."""
    anchors = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_resolve(page: Path) -> None:
    """Links to other files of the repository (and their headings) point somewhere real."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in _LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{_name(page)} links to a missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{_name(page)} links to a missing {target}"


if __name__ == "__main__":
    run_page(Path(sys.argv[1]))
