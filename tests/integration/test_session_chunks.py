"""Large flushes are split into several ``_bulk_docs`` requests by default, small ones are not.

Without ``batch_size`` a request holds at most ``Session.max_request_docs`` documents (5,000)
and ``Session.max_request_bytes`` of JSON (16 MiB); ``batch_size`` still decides alone.
"""

from __future__ import annotations

from session_models import Task, all_bodies, record_bulk_docs

import couchmapper as cm
from couchmapper.backends.base import Backend


def test_defaults_are_documented_values() -> None:
    """The defaults: 5,000 documents and 16 MiB per request."""
    s = cm.Session()
    assert (s.max_request_docs, s.max_request_bytes) == (5_000, 16 * 1024 * 1024)


def test_ordinary_flush_is_one_request(backend: Backend) -> None:
    """500 new documents go out in one request, with one progress call."""
    s = cm.Session(backend)
    s.add_all(Task(title=f"t{n}", id=f"t{n:04d}") for n in range(500))
    sent = record_bulk_docs(backend)
    seen: list[tuple[int, int]] = []
    s.flush(progress=lambda done, total: seen.append((done, total)))
    assert [len(docs) for docs in sent] == [500]
    assert seen == [(500, 500)]


def test_more_than_5000_documents_are_split(backend: Backend) -> None:
    """5,001 documents: requests of 5,000 and 1, progress after each, all written."""
    s = cm.Session(backend)
    s.add_all(Task(title="x", id=f"t{n:05d}") for n in range(5_001))
    sent = record_bulk_docs(backend)
    seen: list[tuple[int, int]] = []
    results = s.flush(progress=lambda done, total: seen.append((done, total)))
    assert [len(docs) for docs in sent] == [5_000, 1]
    assert seen == [(5_000, 5_001), (5_001, 5_001)]
    assert len(results) == 5_001 and not s.has_pending()
    assert len(all_bodies(backend)) == 5_001


def test_split_by_encoded_size(backend: Backend) -> None:
    """With a 3,000-byte limit, ~1 KB documents go three or fewer to a request, a big one alone."""
    s = cm.Session(backend)
    s.max_request_bytes = 3_000
    s.add_all(Task(title="a" * 900, id=f"s{n}") for n in range(7))
    s.add(Task(title="b" * 5_000, id="s7-big"))
    s.add(Task(title="small", id="s8"))
    sent = record_bulk_docs(backend)
    s.flush()
    sizes = [len(docs) for docs in sent]
    assert sizes == [3, 3, 1, 1, 1]  # 900-char titles: three fit in 3,000 bytes, not four
    assert [d["_id"] for d in sent[3]] == ["s7-big"]
    assert len(all_bodies(backend)) == 9


def test_batch_size_wins_over_the_limits(backend: Backend) -> None:
    """An explicit batch_size splits by count alone, whatever the default limits say."""
    s = cm.Session(backend, batch_size=3)
    s.max_request_docs = 2
    s.max_request_bytes = 10
    s.add_all(Task(title=f"t{n}", id=f"b{n}") for n in range(10))
    sent = record_bulk_docs(backend)
    s.flush()
    assert [len(docs) for docs in sent] == [3, 3, 3, 1]
