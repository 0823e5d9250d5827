"""Values JSON cannot carry: refused when set, and a document holding one fails alone.

``float`` fields accepted NaN and infinities; the flush then failed as a whole with CouchDB's
``400 bad_request: invalid UTF-8 JSON`` naming no document, and the valid documents of the same
flush were not written (issue 11, item 8).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from _proxy import RecordingProxy

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend


class Reading(cm.Document, type_name="unencodable-reading"):
    """Floats in every shape a field can hold them."""

    value: float = 0.0
    maybe: float | None = None
    series: list[float] = cm.field(factory=list)
    by_name: dict[str, float] = cm.field(factory=dict)
    extra: dict[str, Any] = cm.field(factory=dict)
    anything: Any = None


BAD_FLOATS = [math.nan, math.inf, -math.inf]


def sent_bulk_ids(request: pytest.FixtureRequest, backend: Backend) -> Callable[[], list[Any]]:
    """The ids of each ``_bulk_docs`` sent: backend calls, and on a server the proxy's requests."""
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    calls: list[list[str]] = []
    real = backend.bulk_docs

    def bulk_docs(docs: Any, **options: Any) -> Any:
        calls.append(sorted(doc["_id"] for doc in docs))
        return real(docs, **options)

    monkeypatch.setattr(backend, "bulk_docs", bulk_docs)
    if not isinstance(backend, CouchDBBackend):
        return lambda: list(calls)
    proxy: RecordingProxy = request.getfixturevalue("proxy")
    proxy.clear()

    def both() -> list[Any]:
        posted = [
            sorted(doc["_id"] for doc in r.body["docs"])
            for r in proxy.requests_to("_bulk_docs", method="POST")
        ]
        assert posted == calls  # what the backend was given is what went over the wire
        return posted

    return both


@pytest.mark.parametrize("bad", BAD_FLOATS)
def test_float_fields_refuse_non_finite_values_when_made(bad: float) -> None:
    """Construction refuses NaN/inf in a float, optional float, list and dict of floats."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"value": bad}, "value"),
        ({"maybe": bad}, "maybe"),
        ({"series": [1.0, bad]}, "series[1]"),
        ({"by_name": {"a": bad}}, "by_name.a"),
        ({"extra": {"deep": [bad]}}, "extra.deep[0]"),
        ({"anything": bad}, "anything"),
    ]
    for kwargs, path in cases:
        with pytest.raises(cm.ValidationError) as caught:
            Reading(id="r", **kwargs)
        assert [e.path for e in caught.value.errors] == [path], kwargs


@pytest.mark.parametrize("bad", BAD_FLOATS)
def test_float_fields_refuse_non_finite_values_when_set(bad: float) -> None:
    """Assignments and container edits refuse NaN/inf and leave the document unchanged."""
    reading = cm.load(Reading, {"_id": "r", "value": 1.5, "series": [1.0], "by_name": {}})
    edits: list[Callable[[], Any]] = [
        lambda: setattr(reading, "value", bad),
        lambda: setattr(reading, "maybe", bad),
        lambda: reading.series.append(bad),
        lambda: reading.by_name.__setitem__("a", bad),
        lambda: reading.extra.__setitem__("k", {"deep": bad}),
        lambda: setattr(reading, "anything", bad),
    ]
    for edit in edits:
        with pytest.raises(cm.ValidationError) as caught:
            edit()
        assert caught.value.doc_id == "r"
    assert (reading.value, reading.maybe, reading.series, reading.by_name) == (1.5, None, [1.0], {})
    assert cm.changes(reading) == []


def test_a_document_that_cannot_be_encoded_fails_alone(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    """NaN planted around the checks: that document fails, named with its path; others are sent."""
    sent = sent_bulk_ids(request, backend)
    s = cm.Session(backend)
    s.add(Reading(value=1.0, id="good-1"))
    bad = s.add(Reading(id="bad"))
    dict.__setitem__(bad.extra, "oops", [1, {"deep": math.nan}])  # around the tracking
    raw_id = s.create({"_id": "raw-bad", "n": 1})
    dict.__setitem__(s[raw_id], "n", math.inf)
    s.add(Reading(value=2.0, id="good-2"))
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    failures = {f.doc_id: f for f in caught.value.failures}
    assert sorted(failures) == ["bad", "raw-bad"]
    assert failures["bad"].error == "bad_request"
    assert "extra.oops[1].deep" in failures["bad"].reason
    assert "n:" in failures["raw-bad"].reason
    error = failures["bad"].exception
    assert isinstance(error, cm.ValidationError) and error.doc_id == "bad"
    assert sent() == [["good-1", "good-2"]]
    assert sorted(r["id"] for r in backend.all_docs()["rows"]) == ["good-1", "good-2"]
    # Kept pending: fixed, the next flush writes them (and only them).
    assert s.has_pending()
    dict.__delitem__(bad.extra, "oops")
    s[raw_id]["n"] = 2
    s.flush()
    assert sent()[-1] == ["bad", "raw-bad"]
    assert backend.get("bad")["extra"] == {} and backend.get("raw-bad")["n"] == 2
    assert not s.has_pending()


def test_a_typed_value_planted_in_dict_fails_alone(backend: Backend) -> None:
    """A wrong-typed value written into ``__dict__`` fails its document only, naming the field."""
    s = cm.Session(backend)
    s.add(Reading(id="fine"))
    broken = s.add(Reading(id="broken"))
    broken.__dict__["value"] = math.nan
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    (failure,) = caught.value.failures
    assert failure.doc_id == "broken" and "value" in failure.reason
    assert [r["id"] for r in backend.all_docs()["rows"]] == ["fine"]
    broken.value = 3.0
    s.flush()
    assert backend.get("broken")["value"] == 3.0
