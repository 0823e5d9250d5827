"""Attachments read lazily and checked, and attachment edits in conflicts (issue 12)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend


class Sheet(cm.Document, type_name="att-sheet"):
    """A document with a field and files."""

    title: str = ""
    count: int = 0


def seed(backend: Backend, doc_id: str = "s1", files: dict[str, bytes] | None = None) -> str:
    """A sheet with ``files`` (octet-stream) stored straight through the backend; its rev."""
    atts = {
        name: {"content_type": "application/octet-stream", "data": base64.b64encode(data).decode()}
        for name, data in (files or {"a.bin": b"alpha"}).items()
    }
    body = {"_id": doc_id, "type": "att-sheet", "title": "t", "count": 0, "_attachments": atts}
    (result,) = backend.bulk_docs([body])
    return str(result["rev"])


def load(s: cm.Session, doc_id: str = "s1") -> Sheet:
    """Load a sheet that must exist."""
    found = s.get(Sheet, doc_id)
    assert found is not None
    return found


def test_open_reads_in_pieces(backend: Backend) -> None:
    """``open()`` gives a binary stream; partial reads add up to the body."""
    seed(backend, files={"b": bytes(range(256)) * 40})
    att = load(cm.Session(backend)).attachments["b"]
    with att.open() as stream:
        first = stream.read(1000)
        rest = stream.read()
    assert first + rest == bytes(range(256)) * 40 and len(first) == 1000


def test_a_body_that_does_not_match_its_digest_is_refused(backend: Backend) -> None:
    """The digest is checked at the end of a read: a stub of other bytes is caught."""
    seed(backend)
    att = load(cm.Session(backend)).attachments["a.bin"]
    att.digest = "md5-" + base64.b64encode(b"0123456789abcdef").decode()  # another body's
    with pytest.raises(cm.AttachmentError, match=r"'a.bin' of document 's1': digest .* does not"):
        att.read()


def test_a_read_is_at_the_loaded_revision(backend: Backend) -> None:
    """Replaced on the server since it was loaded: the loaded revision's bytes are read."""
    seed(backend)
    att = load(cm.Session(backend)).attachments["a.bin"]
    other = cm.Session(backend)
    load(other).attachments["a.bin"] = cm.Attachment(b"changed")
    other.flush()
    assert att.read() == b"alpha"
    assert load(cm.Session(backend)).attachments["a.bin"].read() == b"changed"


def test_a_read_after_the_revision_is_gone_says_it_changed(
    backend: Backend, server_kind_or_memory: str
) -> None:
    """The loaded revision purged on the server: the read says the attachment changed there."""
    rev = seed(backend)
    att = load(cm.Session(backend)).attachments["a.bin"]
    if server_kind_or_memory == "pouchdb":
        # pouchdb-server has no _purge (03/purge): 400 only_multipart_accepted, nothing gone.
        with pytest.raises(cm.BackendError) as refused:
            backend.purge({"s1": [rev]})
        assert refused.value.status == 400
        assert att.read() == b"alpha"
        return
    backend.purge({"s1": [rev]})
    with pytest.raises(cm.AttachmentError, match=r"not found at revision .*changed on the server"):
        att.read()


def test_reading_needs_a_session(backend: Backend) -> None:
    """A document whose session was closed cannot read: the error says what to do."""
    seed(backend)
    s = cm.Session(backend)
    att = load(s).attachments["a.bin"]
    s.close()
    with pytest.raises(cm.SessionStateError):
        att.read()


def test_view_and_find_results_carry_readable_stubs(backend: Backend) -> None:
    """``find`` and ``view(include_docs=True)`` give documents whose attachments read lazily."""
    seed(backend)
    s = cm.Session(backend)
    (found,) = s.find(Sheet, Sheet.title == "t")
    assert found.attachments["a.bin"].read() == b"alpha"
    s2 = cm.Session(backend)
    rows = s2.view("_all_docs", include_docs=True)
    (doc,) = [row.doc for row in rows]
    assert isinstance(doc, Sheet)
    assert doc.attachments["a.bin"].length == 5 and doc.attachments["a.bin"].read() == b"alpha"


def test_an_attachment_edit_on_a_stale_document_conflicts(backend: Backend) -> None:
    """Another writer moved the document on: the attachment edit raises a conflict, kept."""
    seed(backend)
    s = cm.Session(backend)
    doc = load(s)
    other = cm.Session(backend)
    load(other).count = 5
    other.flush()
    doc.attachments["n.bin"] = cm.Attachment(b"new")
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    assert caught.value.failures[0].error == "conflict"
    assert [c.pointer for c in cm.changes(doc)] == ["/_attachments/n.bin"]


def test_rebase_merges_an_attachment_edit_with_a_field_edit(backend: Backend) -> None:
    """``conflict="rebase"``: our new attachment and their field edit both land."""
    seed(backend, files={"a.bin": b"alpha", "b.bin": b"beta"})
    s = cm.Session(backend, conflict="rebase")
    doc = load(s)
    other = cm.Session(backend)
    theirs = load(other)
    theirs.count = 7
    theirs.attachments["theirs.bin"] = cm.Attachment(b"T")
    other.flush()
    doc.attachments["mine.bin"] = cm.Attachment(b"M")
    doc.attachments["a.bin"] = cm.Attachment(b"alpha 2")
    del doc.attachments["b.bin"]
    s.flush()
    stored = backend.get("s1")
    assert stored["count"] == 7
    assert sorted(stored["_attachments"]) == ["a.bin", "mine.bin", "theirs.bin"]
    assert doc.count == 7 and doc.rev == stored["_rev"]
    fresh = load(cm.Session(backend))
    reads: dict[str, Any] = {n: fresh.attachments[n].read() for n in fresh.attachments}
    assert reads == {"a.bin": b"alpha 2", "mine.bin": b"M", "theirs.bin": b"T"}
    assert doc.attachments["theirs.bin"].read() == b"T"


def test_rebase_of_the_same_attachment_on_both_sides_is_a_conflict(backend: Backend) -> None:
    """Both sides replaced one attachment: the rebase reports the overlap, nothing lost."""
    seed(backend)
    s = cm.Session(backend, conflict="rebase")
    doc = load(s)
    other = cm.Session(backend)
    load(other).attachments["a.bin"] = cm.Attachment(b"theirs")
    other.flush()
    doc.attachments["a.bin"] = cm.Attachment(b"mine")
    with pytest.raises(cm.ConflictError) as caught:
        s.flush()
    assert caught.value.paths == ("_attachments.a.bin",)
    assert [c.pointer for c in cm.changes(doc)] == ["/_attachments/a.bin"]
    assert doc.attachments["a.bin"].read() == b"mine"


class LastWriterSheet(cm.Document, type_name="att-sheet-ours"):
    """A sheet whose class lets this session's attachment edit win a same-name rebase."""

    title: str = ""
    count: int = 0

    class Meta:
        attachment_merge = "ours"


def test_attachment_merge_ours_lets_our_edit_of_the_same_attachment_win(
    backend: Backend,
) -> None:
    """``Meta.attachment_merge = "ours"``: a same-name overlap rebases; their field edit stays."""
    backend.bulk_docs(
        [
            {
                "_id": "o1",
                "type": "att-sheet-ours",
                "_attachments": {
                    "a.bin": {
                        "content_type": "application/octet-stream",
                        "data": base64.b64encode(b"alpha").decode(),
                    }
                },
            }
        ]
    )
    s = cm.Session(backend, conflict="rebase")
    doc = s.get(LastWriterSheet, "o1")
    other = cm.Session(backend)
    theirs = other.get(LastWriterSheet, "o1")
    assert doc is not None and theirs is not None
    theirs.attachments["a.bin"] = cm.Attachment(b"theirs")
    theirs.count = 3
    other.flush()
    doc.attachments["a.bin"] = cm.Attachment(b"mine")
    s.flush()
    assert not cm.changes(doc)
    fresh = cm.Session(backend).get(LastWriterSheet, "o1")
    assert fresh is not None and fresh.count == 3
    assert fresh.attachments["a.bin"].read() == b"mine"


def test_attachment_merge_accepts_only_ours() -> None:
    """Any other ``Meta.attachment_merge`` is refused when the class is defined, named."""
    with pytest.raises(ValueError, match=r'Bad.Meta.attachment_merge must be "ours"'):

        class Bad(cm.Document, type_name="att-bad"):
            class Meta:
                attachment_merge = "theirs"


@pytest.fixture
def server_kind_or_memory(backend: Backend, request: pytest.FixtureRequest) -> str:
    """``"memory"``, or the kind of the test server behind ``backend``."""
    if isinstance(backend, CouchDBBackend):
        kind: str = request.getfixturevalue("server_kind")
        return kind
    return "memory"


def test_compressible_digests_follow_the_server(
    backend: Backend, server_kind_or_memory: str
) -> None:
    """``text/plain``: CouchDB's digest is the md5 of its gzip bytes, pouchdb-server's of the raw.

    Either way the body reads back checked. Recorded in 08/att-digest-and-length: "hello" is
    ``md5-iMaiC8wqiFlD2NjLTemvCQ==`` on CouchDB, ``md5-XUFAKrxLKna5cZ2REBfFkg==`` on pouchdb.
    """
    body = {
        "_id": "txt",
        "type": "att-sheet",
        "_attachments": {"h.txt": {"content_type": "text/plain", "data": "aGVsbG8="}},
    }
    backend.bulk_docs([body])
    att = load(cm.Session(backend), "txt").attachments["h.txt"]
    if server_kind_or_memory == "pouchdb":
        assert att.digest == "md5-XUFAKrxLKna5cZ2REBfFkg=="
    else:
        assert att.digest == "md5-iMaiC8wqiFlD2NjLTemvCQ=="
    assert att.read() == b"hello" and att.length == 5


def test_text_written_by_the_session_reads_back_checked(backend: Backend) -> None:
    """A compressible attachment this session wrote reads back in the same session."""
    s = cm.Session(backend)
    doc = Sheet(id="w")
    doc.attachments["notes.txt"] = cm.Attachment(b"some notes " * 50, "text/plain")
    s.add(doc)
    s.flush()
    assert doc.attachments["notes.txt"].read() == b"some notes " * 50
    doc.title = "again"
    s.flush()
    assert load(cm.Session(backend), "w").attachments["notes.txt"].read() == b"some notes " * 50


def test_a_large_compressible_body_streams_back_unzipped(backend: Backend) -> None:
    """2 MiB of text (stored gzip by CouchDB and the engine) reads back in bounded pieces."""
    text = b"the same line again\n" * 100_000
    s = cm.Session(backend)
    doc = Sheet(id="gz")
    doc.attachments["log.txt"] = cm.Attachment(text, "text/plain")
    s.add(doc)
    s.flush()
    att = load(cm.Session(backend), "gz").attachments["log.txt"]
    pieces = []
    with att.open() as stream:
        while piece := stream.read(300_000):
            assert len(piece) <= 300_000
            pieces.append(piece)
    assert b"".join(pieces) == text and att.length == len(text)


def test_rebase_of_a_whole_member_set_through_the_dict_api(backend: Backend) -> None:
    """``doc["_attachments"] = {...}`` on a raw document rebases when they left it alone."""
    atts = {"a.bin": {"content_type": "application/octet-stream", "data": "YQ=="}}
    backend.bulk_docs([{"_id": "raw", "count": 0, "_attachments": atts}])
    s = cm.Session(backend, conflict="rebase")
    doc = s["raw"]
    other = cm.Session(backend)
    other["raw"]["count"] = 3
    other.flush()
    stub = dict(doc["_attachments"]["a.bin"])
    doc["_attachments"] = {"a.bin": stub, "c.bin": {"content_type": "text/plain", "data": "Yw=="}}
    s.flush()
    stored = backend.get("raw")
    assert stored["count"] == 3 and sorted(stored["_attachments"]) == ["a.bin", "c.bin"]
    assert cm.Session(backend)["raw"].attachments["c.bin"].read() == b"c"
