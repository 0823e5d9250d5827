"""Ids that name no ordinary document: refused before any request, the same on every backend.

Typed documents with ``_design/``/``_local/`` ids became design or local documents, and ``""``
got a generated id; ``get(Cls, "_all_docs")`` sent that request and failed with a raw
``KeyError`` on servers (issue 11, items 6 and 7).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _proxy import RecordingProxy

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend


class Memo(cm.Document, type_name="hostile-memo"):
    """An ordinary typed document."""

    text: str = ""


class Layout(cm.Document, type_name="hostile-layout"):
    """A typed document class that opts in to design and local ids."""

    views: dict[str, Any] = cm.field(factory=dict)

    class Meta:
        """Design documents of this class are meant."""

        allow_reserved_ids = True


ENDPOINT_IDS = ["", "_all_docs", "_changes", "_security", "_design/", "_local/", "_find"]
RESERVED_IDS = ["_design/memo", "_local/memo", "_memo", ""]


BACKEND_METHODS = ("info", "get", "put", "delete", "bulk_docs", "all_docs", "find", "view")


def recorded(request: pytest.FixtureRequest, backend: Backend) -> Callable[[], list[str]]:
    """A function listing what reached the backend: its method calls, and on a server the
    HTTP requests the proxy saw."""
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    calls: list[str] = []
    for name in BACKEND_METHODS:
        real = getattr(backend, name)

        def call(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(backend, name, call)
    if not isinstance(backend, CouchDBBackend):
        return lambda: list(calls)
    proxy: RecordingProxy = request.getfixturevalue("proxy")
    proxy.clear()
    return lambda: calls + [f"{r.method} {r.path}" for r in proxy.requests]


@pytest.mark.parametrize("doc_id", RESERVED_IDS)
def test_typed_documents_refuse_reserved_ids_when_made(doc_id: str) -> None:
    """``Memo(id="_design/x")`` and assigning such an id raise at once, naming the id."""
    with pytest.raises(cm.ValidationError) as caught:
        Memo(text="t", id=doc_id)
    assert caught.value.doc_id == doc_id
    assert caught.value.errors[0].path == "id"
    memo = Memo(text="t")
    with pytest.raises(cm.ValidationError):
        memo.id = doc_id
    assert memo.id is None


@pytest.mark.parametrize("doc_id", RESERVED_IDS)
def test_a_session_writes_no_typed_document_with_a_reserved_id(
    backend: Backend, request: pytest.FixtureRequest, doc_id: str
) -> None:
    """Ids set around the constructor (``create``, ``__dict__``) are refused by add: no request."""
    requests = recorded(request, backend)
    s = cm.Session(backend)
    with pytest.raises(cm.ValidationError) as caught:
        s.create({"_id": doc_id, "type": "hostile-memo", "text": "t"})
    assert repr(doc_id) in str(caught.value)
    sneaky = Memo(text="t")
    sneaky.__dict__["id"] = doc_id
    with pytest.raises(cm.ValidationError):
        s.add(sneaky)
    assert not s.has_pending()
    assert s.flush() == []
    assert requests() == []
    assert backend.all_docs()["rows"] == []


def test_the_meta_option_allows_design_ids(backend: Backend) -> None:
    """A class with ``allow_reserved_ids = True`` writes and reads its design document."""
    s = cm.Session(backend)
    layout = Layout(views={"all": {"map": "function (doc) { emit(doc._id, null); }"}})
    layout.id = "_design/layouts"
    s.add(layout)
    s.flush()
    stored = backend.get("_design/layouts")
    assert stored["views"] == layout.views
    again = cm.Session(backend).get(Layout, "_design/layouts")
    assert again is not None and again.views == layout.views
    with pytest.raises(cm.ValidationError):
        Layout(id="_all_docs")  # still no endpoint names


@pytest.mark.parametrize("doc_id", ENDPOINT_IDS)
def test_reads_refuse_ids_naming_no_document_before_any_request(
    backend: Backend, request: pytest.FixtureRequest, doc_id: str
) -> None:
    """get, get_many, s[id], del s[id], s[id] = ..., ``in``: one clear error, nothing sent."""
    backend.bulk_docs([{"_id": "real", "type": "hostile-memo", "text": "x"}])
    requests = recorded(request, backend)
    s = cm.Session(backend)
    attempts: list[Callable[[], Any]] = [
        lambda: s.get(Memo, doc_id),
        lambda: s.get(doc_id),
        lambda: s.get_many(Memo, ["real", doc_id]),
        lambda: s[doc_id],
        lambda: s.__delitem__(doc_id),
        lambda: s.__setitem__(doc_id, {"a": 1}),
        lambda: doc_id in s,
    ]
    for attempt in attempts:
        with pytest.raises(cm.ValidationError) as caught:
            attempt()
        assert caught.value.doc_id == doc_id
        assert "reserved" in str(caught.value) or "empty id" in str(caught.value)
    assert requests() == []


def test_typed_reads_of_design_ids_need_the_meta_option(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    """``get(Memo, "_design/x")`` is refused like a write; untyped reads of it still work."""
    backend.put({"_id": "_design/x", "views": {}})
    requests = recorded(request, backend)
    s = cm.Session(backend)
    with pytest.raises(cm.ValidationError, match="allow_reserved_ids"):
        s.get(Memo, "_design/x")
    assert requests() == []
    assert s["_design/x"]["views"] == {}
    assert "_design/x" in s
