"""Attachments through the session (issue 12): tracked, inline when small, lazy to read.

Every test runs on the memory engine and on the test server (pouchdb-server by default,
Apache CouchDB 3.5 with ``COUCHDB_URL``) through the recording proxy.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
from _proxy import RecordingProxy
from session_models import record_bulk_docs

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend


class Report(cm.Document, type_name="att-report"):
    """A document that carries files."""

    title: str = ""
    pages: int = 0


def md5(data: bytes) -> str:
    """CouchDB's digest form of the md5 of ``data``."""
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


def get_report(s: cm.Session, doc_id: str | None) -> Report:
    """Load a report that must exist."""
    assert doc_id is not None
    found = s.get(Report, doc_id)
    assert found is not None
    return found


def proxy_of(backend: Backend, request: pytest.FixtureRequest) -> RecordingProxy | None:
    """The recording proxy in front of a server backend (None on the memory engine)."""
    if isinstance(backend, CouchDBBackend):
        found: RecordingProxy = request.getfixturevalue("proxy")
        return found
    return None


def stored_report(backend: Backend, doc_id: str = "r1") -> str:
    """A report with two attachments written straight to the backend; its rev."""
    body = {
        "_id": doc_id,
        "type": "att-report",
        "title": "Q3",
        "pages": 1,
        "_attachments": {
            "a.bin": {"content_type": "application/octet-stream", "data": "AAEC"},
            "b.txt": {"content_type": "text/plain", "data": base64.b64encode(b"bee").decode()},
        },
    }
    (result,) = backend.bulk_docs([body])
    return str(result["rev"])


def test_round_trip_keeps_metadata_and_bytes(backend: Backend) -> None:
    """A small attachment written by a flush loads with its type, length, digest and revpos."""
    s = cm.Session(backend)
    r = Report(title="Q3")
    r.attachments["data.bin"] = cm.Attachment(b"\x00\x01\x02payload", "application/octet-stream")
    s.add(r)
    s.flush()
    assert r.rev is not None
    loaded = get_report(cm.Session(backend), r.id)
    att = loaded.attachments["data.bin"]
    assert (att.content_type, att.length, att.revpos) == ("application/octet-stream", 10, 1)
    assert att.digest == md5(b"\x00\x01\x02payload")  # not compressible: md5 of the bytes
    assert att.read() == b"\x00\x01\x02payload"
    assert list(loaded.attachments) == ["data.bin"]
    assert r.attachments["data.bin"].digest == att.digest  # the writer's stub agrees


def test_a_mixed_flush_with_small_attachments_is_one_request(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    """Field edits and small attachments on many documents go in one ``_bulk_docs``."""
    stored_report(backend)
    proxy = proxy_of(backend, request)
    sent = record_bulk_docs(backend)
    s = cm.Session(backend)
    old = get_report(s, "r1")
    old.pages = 2
    old.attachments["c.csv"] = cm.Attachment(b"x,y\n1,2\n", "text/csv")
    news = [Report(title=f"n{i}", id=f"n{i}") for i in range(5)]
    for i, doc in enumerate(news):
        doc.attachments["f.bin"] = cm.Attachment(io.BytesIO(bytes([i]) * 100))
        s.add(doc)
    if proxy is not None:
        proxy.clear()
    before = s.stats().requests
    s.flush()
    assert s.stats().requests - before == 1
    assert len(sent) == 1 and len(sent[0]) == 6
    by_id = {d["_id"]: d for d in sent[0]}
    assert by_id["n3"]["_attachments"]["f.bin"]["data"] == base64.b64encode(b"\x03" * 100).decode()
    assert by_id["r1"]["_attachments"]["c.csv"]["data"] == base64.b64encode(b"x,y\n1,2\n").decode()
    if proxy is not None:
        assert [r.method for r in proxy.requests] == ["POST"]
    assert (
        backend.get("n3", attachments=True)["_attachments"]["f.bin"]["data"]
        == base64.b64encode(b"\x03" * 100).decode()
    )
    assert backend.get("r1")["pages"] == 2


def test_loading_never_downloads_bodies(backend: Backend, request: pytest.FixtureRequest) -> None:
    """``get``, ``find`` and views give stubs; a body is fetched only by ``read()``."""
    stored_report(backend)
    proxy = proxy_of(backend, request)
    if proxy is not None:
        proxy.clear()
    s = cm.Session(backend)
    r = get_report(s, "r1")
    (found,) = s.find(Report, Report.title == "Q3")
    assert found is r
    att = r.attachments["a.bin"]
    assert (att.length, att.content_type) == (3, "application/octet-stream")
    if proxy is not None:
        assert not [x for x in proxy.requests if "a.bin" in x.path or "b.txt" in x.path]
    before = s.stats().requests
    assert att.read() == b"\x00\x01\x02"
    assert s.stats().requests - before == 1
    if proxy is not None:
        (get,) = proxy.requests_to("/r1/a.bin")
        assert get.method == "GET" and "rev=" in get.path


def test_changes_list_attachment_edits_as_metadata(backend: Backend) -> None:
    """Adding, replacing and deleting show at ``/_attachments/<name>`` without the bytes."""
    stored_report(backend)
    s = cm.Session(backend)
    r = get_report(s, "r1")
    stub_b = dict(r.attachments["b.txt"].entry or {})
    r.attachments["new.txt"] = cm.Attachment(b"hello", "text/plain")
    r.attachments["a.bin"] = cm.Attachment(b"AAAA")
    del r.attachments["b.txt"]
    found = {c.pointer: c for c in cm.changes(r)}
    assert set(found) == {"/_attachments/new.txt", "/_attachments/a.bin", "/_attachments/b.txt"}
    assert found["/_attachments/new.txt"].op == "add"
    assert found["/_attachments/new.txt"].value == {"content_type": "text/plain", "length": 5}
    assert found["/_attachments/a.bin"].op == "replace"
    assert found["/_attachments/a.bin"].old["revpos"] == 1
    assert found["/_attachments/b.txt"] == cm.Change(
        "remove", ("_attachments", "b.txt"), cm.MISSING, stub_b
    )
    assert "data" not in str(cm.changes(r).to_json_patch())


def test_an_attachment_only_change_makes_the_document_dirty(backend: Backend) -> None:
    """With no field edited, an attachment edit alone is written by the next flush."""
    stored_report(backend)
    s = cm.Session(backend)
    r = get_report(s, "r1")
    assert s.stats().dirty == 0
    r.attachments["only.bin"] = cm.Attachment(b"1")
    assert s.stats().dirty == 1
    (result,) = s.flush()
    assert result.rev == r.rev and r.rev is not None and r.rev.startswith("2-")
    assert set(backend.get("r1")["_attachments"]) == {"a.bin", "b.txt", "only.bin"}
    assert s.stats().dirty == 0 and cm.changes(r) == []


def test_untouched_stubs_are_sent_as_stubs_and_keep_revpos(backend: Backend) -> None:
    """Replacing one attachment re-sends the other as a stub: its revpos stays 1."""
    stored_report(backend)
    sent = record_bulk_docs(backend)
    s = cm.Session(backend)
    r = get_report(s, "r1")
    r.attachments["a.bin"] = cm.Attachment(b"new bytes")
    s.flush()
    (doc,) = sent[0]
    assert doc["_attachments"]["b.txt"]["stub"] is True
    assert "data" not in doc["_attachments"]["b.txt"]
    assert "data" in doc["_attachments"]["a.bin"]
    atts = backend.get("r1")["_attachments"]
    assert atts["b.txt"]["revpos"] == 1 and atts["a.bin"]["revpos"] == 2
    r.title = "again"  # the stubs the session settled are good for the next write too
    s.flush()
    assert backend.get("r1")["_attachments"]["a.bin"]["revpos"] == 2
    assert get_report(cm.Session(backend), "r1").attachments["a.bin"].read() == b"new bytes"


def test_deleting_an_attachment_is_written(backend: Backend) -> None:
    """``del doc.attachments[name]`` removes it on the server, the others stay."""
    stored_report(backend)
    s = cm.Session(backend)
    r = get_report(s, "r1")
    del r.attachments["a.bin"]
    s.flush()
    assert set(backend.get("r1")["_attachments"]) == {"b.txt"}
    del r.attachments["b.txt"]
    s.flush()
    assert "_attachments" not in backend.get("r1")
    assert len(r.attachments) == 0


def test_hooks_receive_attachment_changes(backend: Backend) -> None:
    """``document_changed`` receivers get the attachment change with the others."""
    stored_report(backend)
    seen: list[list[str]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append([c.pointer for c in kwargs["changes"]])

    signals.document_changed.connect(receiver, sender=Report)
    try:
        s = cm.Session(backend)
        r = get_report(s, "r1")
        r.attachments["hooked.bin"] = cm.Attachment(b"h")
        s.flush()
    finally:
        signals.document_changed.disconnect(receiver, sender=Report)
    assert seen == [["/_attachments/hooked.bin"]]


def test_rollback_restores_the_previous_stubs(backend: Backend) -> None:
    """After edits and a rollback, the mapping shows the loaded stubs again, nothing pending."""
    stored_report(backend)
    s = cm.Session(backend)
    r = get_report(s, "r1")
    r.attachments["a.bin"] = cm.Attachment(b"zzz")
    del r.attachments["b.txt"]
    s.rollback()
    assert sorted(r.attachments) == ["a.bin", "b.txt"]
    assert r.attachments["a.bin"].read() == b"\x00\x01\x02"
    assert cm.changes(r) == [] and s.stats().dirty == 0


def test_putting_a_stored_attachment_back_leaves_the_document_clean(backend: Backend) -> None:
    """Delete then put the same stored attachment back: no change; copying it is refused."""
    stored_report(backend)
    s = cm.Session(backend)
    r = get_report(s, "r1")
    att = r.attachments["a.bin"]
    del r.attachments["a.bin"]
    r.attachments["a.bin"] = att
    assert cm.changes(r) == []
    with pytest.raises(cm.AttachmentError, match="cannot be copied or renamed"):
        r.attachments["copy.bin"] = att


def test_names_starting_with_underscore_are_refused_before_sending(backend: Backend) -> None:
    """CouchDB refuses ``_name``: the mapping says so with the document id, nothing sent."""
    s = cm.Session(backend)
    r = Report(id="u1")
    with pytest.raises(cm.AttachmentError, match=r"'_x.txt' of document 'u1'.*start with '_'"):
        r.attachments["_x.txt"] = cm.Attachment(b"x")
    assert s.stats().requests == 0


def test_max_attachment_size_is_checked_before_sending(backend: Backend) -> None:
    """A new attachment over the session's limit fails its document only, which stays pending."""
    s = cm.Session(backend, max_attachment_size=10)
    big, small = Report(id="big"), Report(id="small")
    big.attachments["x.bin"] = cm.Attachment(b"0123456789AB")
    small.attachments["x.bin"] = cm.Attachment(b"ok")
    s.add_all([big, small])
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    (failure,) = caught.value.failures
    assert failure.doc_id == "big" and "max_attachment_size (10)" in failure.reason
    assert backend.get("small")["_attachments"]["x.bin"]["length"] == 2
    assert s.stats().new == 1
    s.max_attachment_size = None
    s.flush()
    assert backend.get("big")["_attachments"]["x.bin"]["length"] == 12


def test_raw_dict_documents_have_attachments_too(backend: Backend) -> None:
    """Untyped documents of the dict API: ``doc.attachments`` works the same way."""
    doc_id = "raw1"
    s = cm.Session(backend)
    s.create({"_id": doc_id, "n": 1})
    doc = s[doc_id]
    doc.attachments["r.bin"] = cm.Attachment(b"raw!")
    s.flush()
    assert backend.get(doc_id)["_attachments"]["r.bin"]["length"] == 4
    again = cm.Session(backend)[doc_id]
    assert again.attachments["r.bin"].read() == b"raw!"
    del again.attachments["r.bin"]
    assert [c.pointer for c in cm.changes(again)] == ["/_attachments/r.bin"]


def test_a_new_attachment_reads_back_before_and_after_the_flush(backend: Backend) -> None:
    """Bytes given are readable at once; after the flush they are read from the server."""
    s = cm.Session(backend)
    r = Report(id="fresh")
    r.attachments["x.bin"] = cm.Attachment(b"abc")
    assert r.attachments["x.bin"].read() == b"abc"
    s.add(r)
    s.flush()
    att = r.attachments["x.bin"]
    assert not att.is_new and att.revpos == 1
    before = s.stats().requests
    assert att.read() == b"abc"
    assert s.stats().requests - before == 1
