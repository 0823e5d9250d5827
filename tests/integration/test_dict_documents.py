"""The python-couchdb dict API: ``session.view("_all_docs")``.

``session.view("_all_docs")`` was refused where python-couchdb's ``Database.view`` accepts
it (issue 11, item 17).
"""

from __future__ import annotations

from typing import Any

import couchmapper as cm
from couchmapper.backends.base import Backend


class Card(cm.Document, type_name="dict-card"):
    """A typed document next to raw ones."""

    title: str = ""


def seed(backend: Backend, *docs: dict[str, Any]) -> None:
    """Store documents directly."""
    assert all("error" not in r for r in backend.bulk_docs(list(docs)))


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
    assert rows[1].doc is s["b"] and rows[1].doc == {"x": 1}
    assert rows[1].key == "b" and rows[1].value == {"rev": s["b"].rev}
    assert rows.total_rows == 3
    keyed = s.view("_all_docs", keys=["b", "zz"])
    assert [(row.key, row.id) for row in keyed] == [("b", "b"), ("zz", None)]
    plain = s.view("_all_docs", startkey="b", limit=1)
    assert [(row.id, row.doc) for row in plain] == [("b", None)]
