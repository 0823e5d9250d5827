"""Replay every recorded CouchDB 3.5 case against the memory engine (see tests/_replay.py)."""

from __future__ import annotations

import pytest
from _replay import TRANSCRIPTS, Case, load_cases, replay_case

# Cases the engine does not answer like CouchDB yet, each with the reason. They run as
# xfail(strict=True): when one starts passing, the test fails until it is removed here.
KNOWN_FAILURES: dict[str, str] = {
    # 02-documents
    "doc-get-open-revs": "no multipart/mixed answer for Accept: multipart/mixed",
    "doc-batch-ok": "batch=ok stores at once (README: safe), but the recorded GET saw 404",
    # 05-bulk-get-changes
    "changes-limit": "limit with since=0 row set differs (shard order)",
    "changes-continuous": "feed=continuous answers JSON, not a line stream",
    "changes-seq-interval-and-heartbeat": "seq_interval leaves seqs in (README: safe)",
    # 07-views
    "view-keys": "duplicate keys: CouchDB's order is cluster-dependent (README)",
    "view-queries": "offset of keys queries (CouchDB's follows its shards)",
    "view-post-body-params": "offset of keys queries (CouchDB's follows its shards)",
    # 08-attachments
    "att-attachments-true": "no multipart/related answer",
    "att-content-types": "JSON attachments are served as bytes, recorded as JSON",
    # 10-errors
    "err-large-json-body": "large body handling",
}


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
