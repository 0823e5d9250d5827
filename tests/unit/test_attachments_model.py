"""``cm.Attachment`` and the ``doc.attachments`` mapping, without a server (issue 12)."""

from __future__ import annotations

import io

import pytest

import couchmapper as cm


class Memo(cm.Document, type_name="att-memo"):
    """A document for these tests."""

    text: str = ""


def test_attachment_takes_bytes_or_a_binary_file() -> None:
    """Bytes-like data is copied; a file's size is what is left from where it stands."""
    assert cm.Attachment(bytearray(b"abc")).length == 3
    source = io.BytesIO(b"0123456789")
    source.seek(4)
    att = cm.Attachment(source, "image/png")
    assert (att.length, att.content_type, att.is_new) == (6, "image/png", True)
    assert att.digest is None and att.revpos is None


def test_attachment_refuses_text_and_other_values() -> None:
    """Text files, str and an empty content type are refused with TypeError."""
    with pytest.raises(TypeError, match="bytes or a binary file, not StringIO"):
        cm.Attachment(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not str"):
        cm.Attachment("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="content_type"):
        cm.Attachment(b"x", "")


def test_a_transient_document_holds_attachments_without_changes() -> None:
    """Before any session the mapping works; a new document records no changes."""
    memo = Memo(id="m")
    memo.attachments["a.bin"] = cm.Attachment(b"a")
    assert list(memo.attachments) == ["a.bin"] and "a.bin" in memo.attachments
    assert cm.dump(memo)["_attachments"] == {
        "a.bin": {"content_type": "application/octet-stream", "length": 1}
    }
    assert cm.changes(memo) == []
    assert memo.attachments["a.bin"].read() == b"a"
    del memo.attachments["a.bin"]
    assert "_attachments" not in cm.dump(memo) and len(memo.attachments) == 0


def test_an_attachment_belongs_to_one_document() -> None:
    """A new Attachment put in one document cannot be put in another."""
    att = cm.Attachment(b"x")
    Memo(id="one").attachments["x"] = att
    with pytest.raises(cm.AttachmentError, match="belongs to another document"):
        Memo(id="two").attachments["x"] = att


def test_a_new_file_attachment_is_not_readable_before_the_flush() -> None:
    """A file is read by the flush: reading it earlier is refused, naming the document."""
    memo = Memo(id="f")
    memo.attachments["f.bin"] = cm.Attachment(io.BytesIO(b"file"))
    with pytest.raises(cm.AttachmentError, match=r"'f.bin' of document 'f': it is not written"):
        memo.attachments["f.bin"].read()


def test_names_are_checked_and_values_typed() -> None:
    """Empty or non-str names and values that are not Attachments are refused."""
    memo = Memo(id="n")
    with pytest.raises(cm.AttachmentError, match="non-empty str"):
        memo.attachments[""] = cm.Attachment(b"x")
    with pytest.raises(TypeError, match=r"expected a cm\.Attachment, not bytes"):
        memo.attachments["x"] = b"x"  # type: ignore[assignment]
    with pytest.raises(KeyError):
        del memo.attachments["missing"]


def test_refresh_shows_the_server_stubs_again() -> None:
    """``refresh`` drops pending attachment edits; the mapping follows the loaded JSON."""
    db = cm.connect()
    db.bulk_docs([{"_id": "r", "type": "att-memo", "_attachments": {"k.bin": {"data": "AA=="}}}])
    s = cm.Session(db)
    memo = s.get(Memo, "r")
    assert memo is not None
    memo.attachments["new.bin"] = cm.Attachment(b"n")
    s.refresh(memo)
    assert list(memo.attachments) == ["k.bin"] and cm.changes(memo) == []
    assert memo.attachments["k.bin"].read() == b"\x00"
    assert repr(memo.attachments) == "<Attachments ['k.bin']>"
