"""Attachments: tracked with the document, inline when small, streamed when large, read lazily.

Run: ``python examples/attachments.py`` (the embedded backend; no server needed)
"""

from __future__ import annotations

import io

import couchmapper as cm


class Report(cm.Document, type_name="example-report"):
    """A report with files attached."""

    title: str


def main() -> None:
    """Add, read, replace and delete attachments through a session."""
    db = cm.connect()  # an in-memory CouchDB

    # 1. New attachments are part of the document: one flush writes everything. Small ones
    #    travel inline in the one _bulk_docs; larger ones (over attachment_inline_limit)
    #    are streamed from the file object after it, one request each.
    s = cm.Session(db, attachment_inline_limit=64 * 1024)
    report = Report(title="Q3", id="q3")
    report.attachments["summary.txt"] = cm.Attachment(b"Revenue up 4%.", content_type="text/plain")
    export = io.BytesIO(b"\x00" * 200_000)  # stands in for open("data.parquet", "rb")
    report.attachments["data.parquet"] = cm.Attachment(export, "application/octet-stream")
    s.add(report)
    s.flush()
    print("written at", report.rev, "requests so far:", s.stats().requests)

    # 2. Loading gives metadata only; bodies are fetched on first read, at the loaded revision.
    reader = cm.Session(db)
    loaded = reader.get(Report, "q3")
    assert loaded is not None
    summary = loaded.attachments["summary.txt"]
    print("summary:", summary.content_type, summary.length, "bytes, digest", summary.digest)
    print("read:", summary.read().decode())
    with loaded.attachments["data.parquet"].open() as stream:
        first = stream.read(1 << 16)  # large ones are read in pieces, never whole
    print("first piece of data.parquet:", len(first), "bytes")

    # 3. Replacing and deleting are tracked changes, like field edits.
    loaded.attachments["summary.txt"] = cm.Attachment(b"Revenue up 5%.", "text/plain")
    del loaded.attachments["data.parquet"]
    print("changes:", [(c.op, c.pointer) for c in cm.changes(loaded)])
    reader.flush()
    print("now stored:", sorted(db.get("q3")["_attachments"]))


if __name__ == "__main__":
    main()
