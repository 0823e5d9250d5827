"""The python-couchdb dict API, complete: documents with ``_id``/``_rev``, and ``_all_docs``.

``session[doc_id]`` was a dict without ``_id``/``_rev`` where python-couchdb's
``couchdb.client.Document`` has them, and ``session.view("_all_docs")`` was refused
(issue 11, items 16 and 17).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import couchdb
import pytest
from _proxy import RecordingProxy

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend


class Card(cm.Document, type_name="dict-card"):
    """A typed document next to raw ones."""

    title: str = ""


def seed(backend: Backend, *docs: dict[str, Any]) -> None:
    """Store documents directly."""
    assert all("error" not in r for r in backend.bulk_docs(list(docs)))


def test_a_raw_document_is_a_mapping_with_id_and_rev(backend: Backend) -> None:
    """``s[id]["_id"]``, ``["_rev"]``, ``.id``, ``.rev``, ``dict()`` and JSON, as python-couchdb."""
    seed(backend, {"_id": "r", "a": 1, "nested": {"b": [1]}})
    stored = backend.get("r")
    doc = cm.Session(backend)["r"]
    assert doc["_id"] == doc.id == "r"
    assert doc["_rev"] == doc.rev == stored["_rev"]
    assert dict(doc) == stored
    assert json.loads(json.dumps(doc)) == stored
    assert list(doc)[:2] == ["_id", "_rev"]
    assert "_rev" in doc and doc.get("_rev") == stored["_rev"]
    assert doc == couchdb.client.Document(stored)


def test_id_and_rev_stay_current_through_flushes(backend: Backend) -> None:
    """New documents get ``_id`` at once and ``_rev`` when written; updates move ``_rev``."""
    s = cm.Session(backend)
    doc_id = s.create({"n": 1})
    doc = s[doc_id]
    assert doc["_id"] == doc_id and "_rev" not in doc
    s.flush()
    first = doc["_rev"]
    assert first == backend.get(doc_id)["_rev"] and first.startswith("1-")
    doc["n"] = 2
    s.flush()
    assert doc["_rev"] == doc.rev == backend.get(doc_id)["_rev"] != first
    assert doc["_rev"].startswith("2-")


def test_id_and_rev_do_not_change_what_is_tracked_or_sent(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    """The change log and the flushed body are the same as before ``_id``/``_rev`` were keys."""
    seed(backend, {"_id": "t", "a": 1})
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    sent: list[list[dict[str, Any]]] = []
    real = backend.bulk_docs

    def bulk_docs(docs: Any, **options: Any) -> Any:
        sent.append(json.loads(json.dumps(list(docs))))
        return real(docs, **options)

    monkeypatch.setattr(backend, "bulk_docs", bulk_docs)
    s = cm.Session(backend)
    doc = s["t"]
    rev = doc["_rev"]
    assert cm.changes(doc) == []
    doc["a"] = 2
    assert cm.changes(doc) == [cm.Change("replace", ("a",), 2, 1)]
    assert cm.dump(doc) == {"_id": "t", "_rev": rev, "a": 2}
    s.flush()
    assert sent == [[{"_id": "t", "_rev": rev, "a": 2}]]
    if isinstance(backend, CouchDBBackend):
        proxy: RecordingProxy = request.getfixturevalue("proxy")
        post = proxy.requests_to("_bulk_docs", method="POST")[-1]  # after the seed's
        assert post.body == {"docs": [{"_id": "t", "_rev": rev, "a": 2}]}
    assert backend.get("t")["a"] == 2
    assert {k: v for k, v in backend.get("t").items() if k != "_rev"} == {"_id": "t", "a": 2}


def test_writing_id_or_rev_through_the_mapping_is_refused(backend: Backend) -> None:
    """``doc["_rev"] = x``/``del doc["_id"]`` raise; the same value is accepted (a no-op)."""
    seed(backend, {"_id": "w", "a": 1})
    s = cm.Session(backend)
    doc = s["w"]
    rev = doc["_rev"]
    edits: list[Callable[[], Any]] = [
        lambda: doc.__setitem__("_rev", "9-abc"),
        lambda: doc.__setitem__("_id", "other"),
        lambda: doc.__delitem__("_rev"),
        lambda: doc.pop("_id"),
        lambda: doc.update({"_rev": "9-abc"}),
    ]
    for edit in edits:
        with pytest.raises(cm.SessionStateError, match=r"'_id'|'_rev'"):
            edit()
    doc.update({"_id": "w", "_rev": rev, "a": 5})  # python-couchdb style: a whole body back
    doc.clear()
    assert doc == {"_id": "w", "_rev": rev}
    assert cm.changes(doc) == [cm.Change("remove", ("a",), cm.MISSING, 1)]
    s.flush()
    assert backend.get("w") == {"_id": "w", "_rev": doc["_rev"]}


def test_setitem_with_a_python_couchdb_document_keeps_meta(backend: Backend) -> None:
    """``s[id] = s[id]``-style bodies carrying ``_id``/``_rev`` replace only the fields."""
    seed(backend, {"_id": "m", "a": 1, "b": 2})
    s = cm.Session(backend)
    body = dict(s["m"])
    body.pop("b")
    body["c"] = 3
    s["m"] = body
    s.flush()
    stored = backend.get("m")
    assert {k: v for k, v in stored.items() if k != "_rev"} == {"_id": "m", "a": 1, "c": 3}
    assert s["m"]["_rev"] == stored["_rev"]


def test_rollback_and_refresh_keep_id_and_rev(backend: Backend) -> None:
    """Restoring a raw document's loaded state keeps its ``_id`` and ``_rev`` keys."""
    seed(backend, {"_id": "rb", "a": 1})
    s = cm.Session(backend)
    doc = s["rb"]
    rev = doc["_rev"]
    doc["a"] = 2
    s.rollback()
    assert doc == {"_id": "rb", "_rev": rev, "a": 1}
    backend.put({"_id": "rb", "_rev": rev, "a": 7})
    s.refresh(doc)
    assert doc["a"] == 7 and doc["_rev"] == backend.get("rb")["_rev"] != rev


def test_view_all_docs_with_docs_from_the_identity_map(backend: Backend) -> None:
    """``s.view("_all_docs", include_docs=True)`` works; rows' ``doc`` are the session's objects."""
    seed(
        backend,
        {"_id": "a", "type": "dict-card", "title": "A"},
        {"_id": "b", "x": 1},
        {"_id": "c", "x": 2},
    )
    s = cm.Session(backend)
    card = s.get(Card, "a")
    s.delete(s["c"])
    rows = s.view("_all_docs", include_docs=True)
    assert [row.id for row in rows] == ["a", "b"]
    assert rows[0].doc is card
    assert rows[1].doc is s["b"] and rows[1].doc["_id"] == "b"
    assert rows[1].key == "b" and rows[1].value == {"rev": s["b"]["_rev"]}
    assert rows.total_rows == 3
    keyed = s.view("_all_docs", keys=["b", "zz"])
    assert [(row.key, row.id) for row in keyed] == [("b", "b"), ("zz", None)]
    plain = s.view("_all_docs", startkey="b", limit=1)
    assert [(row.id, row.doc) for row in plain] == [("b", None)]
