"""Replay every recorded CouchDB 3.5 case against the memory engine (see tests/_replay.py)."""

from __future__ import annotations

import pytest
from _replay import TRANSCRIPTS, Case, load_cases, replay_case

# Cases the engine does not answer like CouchDB yet, each with the reason. They run as
# xfail(strict=True): when one starts passing, the test fails until it is removed here.
KNOWN_FAILURES: dict[str, str] = {}


def _params() -> list[object]:
    params: list[object] = []
    for area, case in load_cases():
        marks = []
        reason = KNOWN_FAILURES.get(case["name"])
        if reason is not None:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(case, id=f"{area}/{case['name']}", marks=marks))
    return params


pytestmark = pytest.mark.skipif(
    not TRANSCRIPTS.is_dir(), reason=f"transcripts not found at {TRANSCRIPTS}"
)


@pytest.mark.parametrize("case", _params())
def test_case_matches_couchdb(case: Case) -> None:
    """Every step answers with CouchDB's status and (by shape) CouchDB's body."""
    problems = replay_case(case)
    assert problems == [], "\n".join(problems)


def test_known_failures_name_real_cases() -> None:
    """Every entry of KNOWN_FAILURES names a recorded case (no stale entries)."""
    names = {case["name"] for _, case in load_cases()}
    assert set(KNOWN_FAILURES) <= names
