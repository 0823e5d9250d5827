"""Large attachments are streamed after the bulk request, and read in pieces (issue 12).

The 48 MiB round trip talks to the test server directly (the recording proxy keeps bodies,
which would count in the measured memory); the failure test goes through the proxy.
"""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest
from _proxy import RecordingProxy

import couchmapper as cm
from couchmapper.backends.couchdb import CouchDBBackend

MiB = 1 << 20
SIZE = 48 * MiB
PEAK_LIMIT = 16 * MiB


class Export(cm.Document, type_name="att-export"):
    """A document with big files."""

    label: str = ""


def write_random_file(path: Path, size: int) -> str:
    """Fill ``path`` with ``size`` random bytes, a MiB at a time; their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(MiB, left))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def test_48_mib_up_and_down_with_bounded_memory(
    couch_backend: CouchDBBackend, tmp_path: Path
) -> None:
    """A 48 MiB file is uploaded and downloaded with a Python memory peak well under 16 MiB."""
    path = tmp_path / "big.bin"
    expected = write_random_file(path, SIZE)
    s = cm.Session(couch_backend)
    doc = Export(id="big", label="x")
    tracemalloc.start()
    try:
        with path.open("rb") as source:
            doc.attachments["big.bin"] = cm.Attachment(source, "application/octet-stream")
            s.add(doc)
            (result,) = s.flush()
        up_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        reader = cm.Session(couch_backend)
        loaded = reader.get(Export, "big")
        assert loaded is not None
        got = hashlib.sha256()
        with loaded.attachments["big.bin"].open() as stream:
            while piece := stream.read(MiB):
                got.update(piece)
        down_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.hexdigest() == expected
    assert up_peak < PEAK_LIMIT, f"upload peak {up_peak / MiB:.1f} MiB"
    assert down_peak < PEAK_LIMIT, f"download peak {down_peak / MiB:.1f} MiB"
    stored = couch_backend.get("big")
    assert stored["_attachments"]["big.bin"]["length"] == SIZE
    # The revision chain: created by the bulk request (1-), the attachment PUT made 2-.
    assert result.rev == doc.rev == stored["_rev"] and stored["_rev"].startswith("2-")
    assert cm.changes(doc) == [] and s.stats().dirty == 0


def test_an_unsized_file_is_sent_chunked(couch_backend: CouchDBBackend) -> None:
    """A file that cannot tell its size (no seek) is streamed with chunked encoding."""

    class Pipe:
        """Gives bytes through ``read`` only, like a pipe."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._data.read(size)

    data = bytes(range(256)) * 1000
    s = cm.Session(couch_backend)
    doc = Export(id="piped")
    doc.attachments["p.bin"] = cm.Attachment(Pipe(data))  # type: ignore[arg-type]
    assert doc.attachments["p.bin"].length is None
    s.add(doc)
    s.flush()
    assert doc.attachments["p.bin"].length == len(data)
    assert cm.Session(couch_backend).get(Export, "piped") is not None
    assert couch_backend.get_attachment("piped", "p.bin")[0] == data


def test_a_failed_upload_leaves_the_rest_pending_with_a_clear_error(
    proxied_backend: CouchDBBackend, proxy: RecordingProxy
) -> None:
    """The second streamed attachment's request is cut: it stays pending, the first is kept."""
    s = cm.Session(proxied_backend, attachment_inline_limit=100)
    doc = Export(id="two")
    doc.attachments["one.bin"] = cm.Attachment(io.BytesIO(b"1" * 1000))
    doc.attachments["two.bin"] = cm.Attachment(io.BytesIO(b"2" * 1000))
    s.add(doc)
    proxy.clear()
    proxy.cut_before(path_contains="/two.bin")
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    (failure,) = caught.value.failures
    assert failure.doc_id == "two"
    assert (
        "'two.bin' was not written" in failure.reason
        and "still pending: 'two.bin'" in failure.reason
    )
    methods = [(r.method, r.path.split("?")[0].rsplit("/", 1)[-1]) for r in proxy.requests]
    assert methods == [("POST", "_bulk_docs"), ("PUT", "one.bin"), ("PUT", "two.bin")]
    stored = proxied_backend.get("two")
    assert list(stored["_attachments"]) == ["one.bin"] and doc.rev == stored["_rev"]
    assert [c.pointer for c in cm.changes(doc)] == ["/_attachments/two.bin"]
    assert s.stats().dirty == 1
    s.flush()
    stored = proxied_backend.get("two")
    assert sorted(stored["_attachments"]) == ["one.bin", "two.bin"] and doc.rev == stored["_rev"]
    assert proxied_backend.get_attachment("two", "two.bin")[0] == b"2" * 1000
    assert cm.changes(doc) == []


def test_large_and_small_in_one_flush(
    proxied_backend: CouchDBBackend, proxy: RecordingProxy
) -> None:
    """Small ones ride in the bulk request, each large one gets its own PUT after it."""
    s = cm.Session(proxied_backend, attachment_inline_limit=1000)
    docs = [Export(id=f"m{i}") for i in range(3)]
    for doc in docs:
        doc.attachments["small.txt"] = cm.Attachment(b"tiny", "text/plain")
        s.add(doc)
    docs[1].attachments["large.bin"] = cm.Attachment(b"L" * 5000)
    proxy.clear()
    s.flush()
    assert [r.method for r in proxy.requests] == ["POST", "PUT"]
    (put,) = proxy.requests_to("/m1/large.bin")
    assert put.raw_body == b"L" * 5000 and put.headers["content-length"] == "5000"
    assert sorted(proxied_backend.get("m1")["_attachments"]) == ["large.bin", "small.txt"]
    assert docs[1].rev == proxied_backend.get("m1")["_rev"]


def test_rebase_with_a_streamed_attachment(proxied_backend: CouchDBBackend) -> None:
    """A stale document with a large new attachment: rebased, then the attachment streamed."""
    s = cm.Session(proxied_backend, conflict="rebase", attachment_inline_limit=100)
    doc = Export(id="stale", label="a")
    s.add(doc)
    s.flush()
    other = cm.Session(proxied_backend)
    theirs = other.get(Export, "stale")
    assert theirs is not None
    theirs.label = "theirs"
    other.flush()
    doc.attachments["big.bin"] = cm.Attachment(io.BytesIO(b"B" * 4000))
    s.flush()
    stored = proxied_backend.get("stale")
    assert stored["label"] == "theirs" and stored["_attachments"]["big.bin"]["length"] == 4000
    assert doc.rev == stored["_rev"] and stored["_rev"].startswith("4-")
    assert doc.label == "theirs" and cm.changes(doc) == []
    assert doc.attachments["big.bin"].read() == b"B" * 4000


def test_a_lost_answer_with_attachments_is_recovered(
    proxied_backend: CouchDBBackend, proxy: RecordingProxy
) -> None:
    """The bulk answer is lost after the server applied it: the retry finds it, sends the rest."""
    s = cm.Session(proxied_backend, attachment_inline_limit=100)
    doc = Export(id="lost")
    doc.attachments["small.txt"] = cm.Attachment(b"inline", "text/plain")
    doc.attachments["large.bin"] = cm.Attachment(io.BytesIO(b"Z" * 3000))
    s.add(doc)
    proxy.cut_after(path_contains="_bulk_docs")
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    assert sorted(cm.dump(doc)["_attachments"]) == ["large.bin", "small.txt"]
    s.flush()
    stored = proxied_backend.get("lost")
    assert sorted(stored["_attachments"]) == ["large.bin", "small.txt"]
    assert doc.rev == stored["_rev"] and cm.changes(doc) == []
    assert proxied_backend.get_attachment("lost", "large.bin")[0] == b"Z" * 3000
    assert doc.attachments["small.txt"].read() == b"inline"
