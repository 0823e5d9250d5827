"""``Session.find_page``: stateless pages with signed tokens, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.orm.paging import open_token, seal_token

KEY = b"test-page-key"


class Item(cm.Document, type_name="page-item"):
    """A document with an indexed sort field that many documents share."""

    rank: int = 0
    group: str = "a"

    class Meta:
        indexes = [cm.Index("rank")]


class Other(cm.Document, type_name="page-other"):
    """A document of another class (never in Item's pages)."""

    rank: int = 0


def seed(backend: Backend, ids_ranks: list[tuple[str, int]]) -> None:
    """Store Items with the given ids and ranks."""
    docs = [{"_id": i, "type": "page-item", "rank": r, "group": "a"} for i, r in ids_ranks]
    results = backend.bulk_docs(docs)
    assert all("error" not in r for r in results), results


def all_pages(
    backend: Backend, *criteria: Any, sort: Any = None, limit: int = 3, between: Any = None
) -> list[list[str]]:
    """Every page's ids, each page read by a fresh session; ``between(n)`` runs after page n."""
    token = None
    pages: list[list[str]] = []
    while True:
        with cm.Session(backend, page_key=KEY) as s:
            page = s.find_page(Item, *criteria, sort=sort, limit=limit, page_token=token)
        pages.append([str(item.id) for item in page.items])
        token = page.next_token
        if token is None:
            return pages
        assert len(pages) < 50, "paging did not end"
        if between is not None:
            between(len(pages))


def test_pages_cover_every_document_once_in_sort_order(backend: Backend) -> None:
    """Sorted by an indexed field with many ties, pages give each document once, in order."""
    cm.sync_design(backend, Item)
    ranked = [(f"i{n:02d}", n % 4) for n in range(14)]
    seed(backend, ranked)
    backend.put({"_id": "o1", "type": "page-other", "rank": 1})
    pages = all_pages(backend, sort=Item.rank, limit=3)
    flat = [doc_id for page in pages for doc_id in page]
    assert sorted(flat) == sorted(i for i, _ in ranked)
    ranks = dict(ranked)
    assert [ranks[i] for i in flat] == sorted(ranks[i] for i in flat)
    assert all(len(page) <= 3 for page in pages)


def test_documents_added_between_pages_never_repeat_or_skip(backend: Backend) -> None:
    """Adding documents before and after the current position between pages: exact pages."""
    cm.sync_design(backend, Item)
    seed(backend, [(f"i{n:02d}", n) for n in range(10)])
    added_later: list[str] = []

    def add(page_number: int) -> None:
        """Add one document before the position read so far and one far after it."""
        seed(backend, [(f"early{page_number}", -1), (f"late{page_number}", 100 + page_number)])
        added_later.append(f"late{page_number}")

    pages = all_pages(backend, sort=Item.rank, limit=3, between=add)
    flat = [doc_id for page in pages for doc_id in page]
    assert len(flat) == len(set(flat))
    assert flat[:10] == [f"i{n:02d}" for n in range(10)]
    assert set(flat[10:]) == set(added_later)
    assert not any(doc_id.startswith("early") for doc_id in flat)


def test_descending_sort_and_criteria(backend: Backend) -> None:
    """A descending sort with a criterion pages the matching documents from the top."""
    cm.sync_design(backend, Item)
    seed(backend, [(f"i{n:02d}", n % 5) for n in range(12)])
    pages = all_pages(backend, Item.rank >= 1, sort=Item.rank.desc(), limit=4)
    flat = [doc_id for page in pages for doc_id in page]
    expected = [f"i{n:02d}" for n in range(12) if n % 5 >= 1]
    assert sorted(flat) == sorted(expected)
    ranks = [int(doc_id[1:]) % 5 for doc_id in flat]
    assert ranks == sorted(ranks, reverse=True)


def test_unsorted_pages_follow_the_ids(backend: Backend) -> None:
    """Without a sort, pages follow document ids; the last page has no next token."""
    seed(backend, [(f"i{n:02d}", n) for n in range(7)])
    pages = all_pages(backend, limit=3)
    flat = [doc_id for page in pages for doc_id in page]
    assert flat == [f"i{n:02d}" for n in range(7)]


def test_empty_result_has_no_next_token(backend: Backend) -> None:
    """A query matching nothing gives an empty page and no token."""
    with cm.Session(backend, page_key=KEY) as s:
        page = s.find_page(Item, Item.rank > 5)
    assert page.items == []
    assert page.next_token is None


def test_token_is_url_safe_and_tamper_evident(backend: Backend) -> None:
    """A token is URL-safe; any altered character or another key gives PageTokenError."""
    seed(backend, [(f"i{n:02d}", n) for n in range(5)])
    with cm.Session(backend, page_key=KEY) as s:
        token = s.find_page(Item, limit=2).next_token
    assert token is not None
    assert all(c.isalnum() or c in "-_." for c in token)
    body, _, mac = token.partition(".")
    forged = seal_token({**open_token(token, KEY), "i": "i00"}, b"guessed key")
    bad_tokens = [body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac, forged, "x", ""]
    for bad in bad_tokens:
        with cm.Session(backend, page_key=KEY) as s, pytest.raises(cm.PageTokenError):
            s.find_page(Item, limit=2, page_token=bad)
    with cm.Session(backend, page_key=b"another app") as s, pytest.raises(cm.PageTokenError):
        s.find_page(Item, limit=2, page_token=token)


def test_token_of_another_query_is_refused(backend: Backend) -> None:
    """A valid token used with another selector or sort is refused, not run."""
    cm.sync_design(backend, Item)
    seed(backend, [(f"i{n:02d}", n) for n in range(5)])
    with cm.Session(backend, page_key=KEY) as s:
        token = s.find_page(Item, sort=Item.rank, limit=2).next_token
        with pytest.raises(cm.PageTokenError, match="another query"):
            s.find_page(Item, Item.rank > 1, sort=Item.rank, limit=2, page_token=token)
        with pytest.raises(cm.PageTokenError, match="another query"):
            s.find_page(Other, sort=Other.rank, limit=2, page_token=token)


def test_pending_changes_are_refused_and_limit_checked(backend: Backend) -> None:
    """find_page reads stored documents only: unflushed changes of the class are refused."""
    with cm.Session(backend, page_key=KEY) as s:
        s.add(Item(id="new"))
        with pytest.raises(cm.SessionStateError, match="flush"):
            s.find_page(Item)
        with pytest.raises(ValueError, match="limit"):
            s.find_page(Other, limit=0)
        s.flush()
        assert [i.id for i in s.find_page(Item).items] == ["new"]


def test_default_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions share $COUCHMAPPER_PAGE_KEY, so tokens work across sessions and workers."""
    monkeypatch.setenv("COUCHMAPPER_PAGE_KEY", "app secret")
    db = cm.connect()
    seed(db, [(f"i{n}", n) for n in range(4)])
    with cm.Session(db) as first:
        token = first.find_page(Item, limit=2).next_token
    with cm.Session(db) as second:
        assert [i.id for i in second.find_page(Item, limit=2, page_token=token).items] == [
            "i2",
            "i3",
        ]
    assert cm.Session(db).page_key == b"app secret"


def test_token_wraps_the_bookmark_or_a_keyset_position(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    """CouchDB and the memory engine page by bookmark; pouchdb-server (no bookmark) by keyset.

    pouchdb-server 4.2.0 sends no ``bookmark`` member (transcripts 06/mango-bookmark-paging).
    """
    seed(backend, [(f"i{n}", n) for n in range(4)])
    with cm.Session(backend, page_key=KEY) as s:
        token = s.find_page(Item, limit=2).next_token
    assert token is not None
    memory = isinstance(backend, cm.connect().__class__)
    kind = "memory" if memory else request.getfixturevalue("server_kind")
    payload = open_token(token, KEY)
    if kind == "pouchdb":
        assert (payload["m"], payload["i"]) == ("k", "i1")
    else:
        assert payload["m"] == "b"
        assert isinstance(payload["b"], str)
