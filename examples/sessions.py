"""Sessions: identity map, one-request flush, conflicts and merge rules (memory backend).

Run: ``python examples/sessions.py``
"""

from __future__ import annotations

import couchmapper as cm


class Article(cm.Document, type_name="example-article"):
    """A blog article with a view counter and a set of tags."""

    title: str
    body: str = ""
    views: int = cm.field(default=0, merge="sum")  # concurrent increments add up
    tags: set[str] = cm.field(factory=set, merge="union")  # concurrent additions merge


def main() -> None:
    """Walk through a session's life."""
    db = cm.connect()  # an in-memory CouchDB

    # 1. One flush, one _bulk_docs request, for every create, update and delete.
    with cm.Session(db) as s:
        s.add(Article(title="Hello", id="hello"))
        s.add(Article(title="Draft", id="draft"))
        note_id = s.create({"kind": "note", "text": "plain dict documents work too"})
    print("stored:", sorted(row["id"] for row in db.all_docs()["rows"]))

    # 2. Identity map: one object per id; changes are tracked, deletes are pending.
    with cm.Session(db) as s:
        hello = s.get(Article, "hello")
        assert hello is not None and s.get(Article, "hello") is hello and s["hello"] is hello
        hello.body = "First post"
        hello.tags.add("intro")
        s.delete(s.get(Article, "draft"))
        s[note_id]["text"] = "edited in place"
        print("pending:", s.stats())
    print("after flush:", db.get("hello")["body"], "| draft exists:", "draft" in cm.Session(db))

    # 3. Conflicts: two sessions edit the same document at once.
    reader = cm.Session(db, conflict="rebase")
    writer = cm.Session(db, conflict="rebase")
    mine, theirs = reader.get(Article, "hello"), writer.get(Article, "hello")
    assert mine is not None and theirs is not None
    mine.views += 1
    mine.tags.add("popular")
    theirs.views += 10
    theirs.tags.add("news")
    writer.flush()
    reader.flush()  # conflict -> fetch current -> re-apply our delta and tag -> resend
    stored = db.get("hello")
    print("merged:", stored["views"], sorted(stored["tags"]))

    # 4. A true overlap is reported, never silently overwritten.
    a, b = cm.Session(db, conflict="rebase"), cm.Session(db, conflict="rebase")
    first, second = a.get(Article, "hello"), b.get(Article, "hello")
    assert first is not None and second is not None
    first.title = "Title A"
    second.title = "Title B"
    a.flush()
    try:
        b.flush()
    except cm.ConflictError as error:
        print("conflict on", error.paths, "theirs:", (error.theirs or {}).get("title"))
        b.refresh(second)  # take the server's version, then decide
    print("final title:", db.get("hello")["title"])

    # 5. An exception inside the block discards everything: nothing is sent.
    try:
        with cm.Session(db) as s:
            doomed = s.get(Article, "hello")
            assert doomed is not None
            doomed.title = "never written"
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    print("still:", db.get("hello")["title"])


if __name__ == "__main__":
    main()
