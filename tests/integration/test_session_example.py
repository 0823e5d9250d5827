"""The sessions example runs and prints what the docs say it prints."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sessions.py"


def test_sessions_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/sessions.py runs on the memory backend and merges concurrent edits."""
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "stored: " in out and "'draft'" in out and "'hello'" in out
    assert "after flush: First post | draft exists: False" in out
    assert "merged: 11 ['intro', 'news', 'popular']" in out
    assert "conflict on ('title',) theirs: Title A" in out
    assert "final title: Title A" in out
    assert "still: Title A" in out
