"""Stateless paging for web APIs: ``Session.find_page`` and its signed page tokens.

A page's ``next_token`` is an opaque, URL-safe string: a JSON payload (base64url) and an
HMAC-SHA256 of it under the session's ``page_key``, so a client can hand it back but not
forge or alter it. The payload names the query it belongs to (a digest of the class,
selector and sort: a token of another query is refused, never run as a different query)
and where the next page starts, in one of two ways:

* ``bookmark``: the server's Mango bookmark (Apache CouchDB and the memory engine). It holds
  the last row's index key and id, so documents added between pages neither repeat nor
  shift rows.
* ``keyset``: for servers that send no bookmark (pouchdb-server 4.2.0, see
  ``tests/transcripts``): the last item's sort values and ``_id``. The next page asks for
  the documents after that position in ``(sort key, _id)`` order: first the rest of the
  last key's ties by ``_id``, then later keys. A page whose end cuts through a group of equal
  keys keeps only the group's members it is sure of (the server orders ties as it likes),
  and takes the group's next members by ``_id``, so no document comes twice or is skipped
  while documents are added.

The page reads stored documents only: a session holding unflushed changes of the class is
refused (flush first), as a page token cannot carry them to the next request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from typing import Any, Final, Generic, TypeVar

import attrs

from couchmapper import mango
from couchmapper._couch.collation import raw_key
from couchmapper._types import JSONDict
from couchmapper.exceptions import (
    PageTokenError,
    QueryLoadError,
    SessionStateError,
    ValidationError,
)
from couchmapper.orm.part import SessionPart
from couchmapper.orm.querying import Find

__all__ = ["PAGE_KEY_ENV", "Page", "Paging", "default_page_key", "open_token", "seal_token"]

T = TypeVar("T")

PAGE_KEY_ENV: Final = "COUCHMAPPER_PAGE_KEY"
"""The environment variable holding the page-token key every worker of an app shares."""

_PROCESS_KEY: Final = secrets.token_bytes(32)


def default_page_key() -> bytes:
    """``$COUCHMAPPER_PAGE_KEY`` (UTF-8), else a random key made once per process."""
    configured = os.environ.get(PAGE_KEY_ENV)
    return configured.encode() if configured else _PROCESS_KEY


@attrs.frozen
class Page(Generic[T]):
    """One page of a query.

    Attributes:
        items: the documents of the page, in sort order.
        next_token: pass it as ``page_token=`` for the next page; None after the last page.
    """

    items: list[T]
    next_token: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal_token(payload: JSONDict, key: bytes) -> str:
    """The URL-safe token for ``payload``: base64url JSON, ``.``, base64url HMAC-SHA256."""
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def open_token(token: str, key: bytes) -> JSONDict:
    """The payload of a token made by :func:`seal_token` with ``key``.

    Raises:
        PageTokenError: the token is malformed, or its signature does not match (forged,
            altered, or made with another key).
    """
    if not isinstance(token, str):
        msg = f"a page token is a str, not {type(token).__name__}"
        raise PageTokenError(msg)
    body, dot, mac = token.partition(".")
    try:
        given = _unb64(mac)
        expected = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    except (binascii.Error, UnicodeEncodeError, ValueError):
        given, expected = b"", b"x"
    if not dot or not hmac.compare_digest(given, expected):
        msg = (
            "invalid page token: its signature does not match (altered, forged, or made with "
            "another page_key; every worker of an app needs the same key)"
        )
        raise PageTokenError(msg)
    payload = json.loads(_unb64(body))
    if not isinstance(payload, dict):
        msg = "invalid page token: no payload"
        raise PageTokenError(msg)
    return payload


def query_digest(spec: Find) -> str:
    """What a token is bound to: the class, the selector and the sort of the query."""
    cls = spec.cls
    name = f"{cls.__module__}.{cls.__qualname__}" if cls is not None else ""
    text = json.dumps([name, spec.selector, spec.sort], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class _Order:
    """The keyset order of a query: its sort fields (or ``_id``), direction, and keys."""

    def __init__(self, sort: Sequence[Any] | None) -> None:
        entries = [item if isinstance(item, dict) else {item: "asc"} for item in sort or ()]
        self.names = [str(next(iter(entry))) for entry in entries]
        self.descending = any(next(iter(entry.values())) == "desc" for entry in entries)
        self.by_id = self.names in ([], ["_id"])
        self.paths = [mango.parse_field(name) for name in self.names]
        self.sort = list(entries) if entries else [{"_id": "asc"}]
        self.id_sort = [{"_id": "desc" if self.descending else "asc"}]
        self.after_op = "$lt" if self.descending else "$gt"

    def present(self) -> JSONDict:
        """The selector of documents that have every sort field (null is the lowest value).

        A sorting index holds exactly those; naming the fields also lets pouchdb-server use
        the index (it refuses a sort on fields the selector does not name, README 06).
        """
        if self.by_id:
            return {}
        return {name: {"$gte": None} for name in self.names}

    def values(self, doc: JSONDict) -> list[Any]:
        return [mango.get_field(doc, path) for path in self.paths]

    def key(self, doc: JSONDict) -> tuple[Any, ...]:
        if self.by_id:
            return (raw_key(doc.get("_id")),)  # ids sort by raw code points, as _all_docs
        return (*(mango.collation_key(v) for v in self.values(doc)), raw_key(doc.get("_id")))

    def arrange(self, docs: list[JSONDict]) -> list[JSONDict]:
        return sorted(docs, key=self.key, reverse=self.descending)

    def ties(self, values: list[Any]) -> JSONDict:
        """The selector of documents with exactly these sort values."""
        return {name: {"$eq": value} for name, value in zip(self.names, values, strict=True)}

    def after(self, values: list[Any]) -> JSONDict:
        """The selector of documents whose sort values come after these (not equal)."""
        alternatives = []
        for index, name in enumerate(self.names):
            step = self.ties(values[:index]) if index else {}
            step = {**step, name: {self.after_op: values[index]}}
            alternatives.append(step)
        return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}


class Paging(SessionPart):
    """``find_page`` of one session."""

    def page(self, spec: Find, limit: int, token: str | None, key: bytes) -> Page[Any]:
        """One page of ``spec`` (see :meth:`Session.find_page`)."""
        if type(limit) is not int or limit < 1:
            msg = f"limit must be an int of at least 1, not {limit!r}"
            raise ValueError(msg)
        self._refuse_pending(spec.cls)
        digest = query_digest(spec)
        spec = attrs.evolve(spec, selector=_and(spec.selector, _Order(spec.sort).present()))
        state = None
        if token is not None:
            state = open_token(token, key)
            if state.get("q") != digest:
                msg = (
                    "this page token belongs to another query (class, selector or sort "
                    "differ); start again without page_token"
                )
                raise PageTokenError(msg)
        if state is None or state.get("m") == "b":
            found = self._bookmark_page(spec, limit, state)
            if found is not None:
                docs, bookmark = found
                token_out = None
                if bookmark is not None and len(docs) == limit:
                    token_out = seal_token({"q": digest, "m": "b", "b": bookmark}, key)
                return Page(self._load(docs, spec), token_out)
        docs, last = self._keyset_page(spec, limit, state)
        token_out = None
        if last is not None:
            order = _Order(spec.sort)
            position = {"q": digest, "m": "k", "k": order.values(last), "i": last["_id"]}
            token_out = seal_token(position, key)
        return Page(self._load(docs, spec), token_out)

    def _refuse_pending(self, cls: type | None) -> None:
        pending = self.pending
        for table in (pending.new, pending.dirty, pending.deleted):
            if any(cls is None or isinstance(obj, cls) for obj in table.values()):
                name = cls.__name__ if cls is not None else "documents"
                msg = (
                    f"find_page reads stored documents only, and this session holds unflushed "
                    f"{name} changes; flush() first (a page token cannot carry them)"
                )
                raise SessionStateError(msg)

    def _answer(self, query: JSONDict) -> JSONDict:
        answer: JSONDict = self.traffic.call(self.session.backend.find, query)
        return answer

    def _find(self, query: JSONDict) -> list[JSONDict]:
        return list(self._answer(query).get("docs", ()))

    def _bookmark_page(
        self, spec: Find, limit: int, state: JSONDict | None
    ) -> tuple[list[JSONDict], str | None] | None:
        """The page by the server's bookmark; None when the server sends none (keyset then)."""
        query = spec.body(limit)
        if state is not None:
            query["bookmark"] = state.get("b")
        answer = self._answer(query)
        docs: list[JSONDict] = list(answer.get("docs", ()))
        bookmark = answer.get("bookmark")
        if not isinstance(bookmark, str) or not bookmark:
            if state is not None:
                msg = "the server stopped sending bookmarks; start again without page_token"
                raise PageTokenError(msg)
            return None
        return docs, (None if bookmark == "nil" else bookmark)

    def _keyset_page(
        self, spec: Find, limit: int, state: JSONDict | None
    ) -> tuple[list[JSONDict], JSONDict | None]:
        """The page after the position in ``state``, and its last document if more may follow."""
        order = _Order(spec.sort)
        selector = spec.selector
        items: list[JSONDict] = []
        values: list[Any] | None = None
        if state is not None:
            values, last_id = list(state.get("k", [])), state.get("i")
            id_after = {"_id": {order.after_op: last_id}}
            if not order.by_id:
                ties = _and(selector, order.ties(values), id_after)
                items = self._find({"selector": ties, "sort": order.id_sort, "limit": limit})
                selector = _and(selector, order.after(values))
            else:
                selector = _and(selector, id_after)
        more = len(items) == limit
        room = limit - len(items)
        if room:
            query = {"selector": selector, "sort": order.sort, "limit": room + 1}
            docs = self._find(query)
            more = len(docs) > room
            if more and not order.by_id:
                docs = self._complete_groups(spec, order, docs, room)
            items += order.arrange(docs)[:room]
        return items, (items[-1] if more and items else None)

    def _complete_groups(
        self, spec: Find, order: _Order, docs: list[JSONDict], room: int
    ) -> list[JSONDict]:
        """Server rows cut off mid-group: keep whole groups, fill up from the cut group by id."""
        cut = order.values(docs[-1])
        whole = [doc for doc in docs if order.values(doc) != cut]
        if len(whole) >= room:
            return whole
        ties = _and(spec.selector, order.ties(cut))
        query = {"selector": ties, "sort": order.id_sort, "limit": room - len(whole)}
        return whole + self._find(query)

    def _load(self, docs: list[JSONDict], spec: Find) -> list[Any]:
        """The session's objects for a page's documents (QueryLoadError names bad ones)."""
        items: list[Any] = []
        failures: list[ValidationError] = []
        for doc in docs:
            try:
                items.append(self.session.load_rows([doc], spec.cls)[0])
            except ValidationError as error:
                failures.append(error)
        if failures:
            raise QueryLoadError(failures, items)
        return items


def _and(*selectors: JSONDict) -> JSONDict:
    """The conjunction of selectors, nested ``$and`` lists flattened (pouchdb-server needs it)."""
    parts: list[JSONDict] = []
    for selector in selectors:
        if list(selector) == ["$and"]:
            parts += selector["$and"]
        elif selector:
            parts.append(selector)
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}
