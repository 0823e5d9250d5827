"""Queries of a session: Mango ``find``, views, counting and streaming, with read-your-writes.

Results reflect the session's pending state: documents deleted in the session never appear;
new and changed documents are matched locally with the same Mango matcher the memory backend
uses (:mod:`couchmapper.mango`), so they appear when they match and disappear when a pending
change made them stop matching; sort, skip and limit are applied after that overlay.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from couchmapper import mango
from couchmapper.backends.base import Backend, JSONDict
from couchmapper.conversion import model_info
from couchmapper.document import Document, dump, state_of
from couchmapper.exceptions import NotFoundError, QueryError
from couchmapper.query import (
    Criteria,
    Index,
    View,
    compile_criteria,
    compile_sort,
    declared_indexes,
    declared_views,
    design_name,
)

if TYPE_CHECKING:
    from couchmapper.session import Session

__all__ = ["QueryMixin", "Row", "ViewResult", "sync_design"]

D = TypeVar("D", bound=Document)

_PAGE = 1000


@attrs.frozen
class Row:
    """One row of a view result; ``doc`` is the identity-mapped object (with ``include_docs``)."""

    id: str | None
    key: Any
    value: Any
    doc: Any = None


class ViewResult(list[Any]):
    """The rows of a view query.

    Attributes:
        total_rows: the server's ``total_rows`` (None for reduce queries).
        offset: the server's ``offset``.
        stale: True when the session has pending new or changed documents that the view
            cannot reflect yet (flush first, or use ``autoflush=True``).
    """

    total_rows: int | None = None
    offset: int | None = None
    stale: bool = False


def _type_selector(cls: type) -> dict[str, Any] | None:
    info = model_info(cls)
    if info is None or not info.is_document:
        msg = f"{cls!r} is not a Document class"
        raise TypeError(msg)
    if info.discriminator is None:
        return None
    names = sorted(info.subclasses)
    if info.type_name is not None and info.type_name not in names:
        names.insert(0, info.type_name)
    if not names:
        return None
    if len(names) == 1:
        return {info.discriminator: {"$eq": names[0]}}
    return {info.discriminator: {"$in": names}}


def _selector(cls: type | None, criteria: Sequence[Criteria]) -> dict[str, Any]:
    selector = compile_criteria(criteria)
    typed = _type_selector(cls) if cls is not None else None
    if typed is None:
        return selector
    if not selector:
        return typed
    return {"$and": [typed, selector]}


@attrs.frozen
class _Find:
    """One Mango query as the session runs it."""

    cls: type | None
    selector: dict[str, Any]
    sort: list[Any] | None = None
    fields: Sequence[Any] | None = None
    use_index: str | Sequence[str] | None = None
    partition: str | None = None

    def body(self, limit: int | None) -> JSONDict:
        query: JSONDict = {"selector": self.selector}
        if self.sort:
            query["sort"] = self.sort
        if self.use_index is not None:
            query["use_index"] = self.use_index
        if self.fields is not None:
            query["fields"] = _field_names(self.fields)
        if limit is not None:
            query["limit"] = limit
        return query


@attrs.define
class _Overlay:
    """The session's pending documents that a query must account for."""

    deleted: set[str]
    changed: dict[str, Any]  # id -> object with pending changes (new or dirty)

    def is_pending(self) -> bool:
        return bool(self.deleted or self.changed)


class QueryMixin:
    """Query methods of :class:`~couchmapper.session.Session`."""

    backend: Backend

    # Shared plumbing ---------------------------------------------------------------------

    def _session(self) -> Session:
        return self  # type: ignore[return-value]

    def _overlay(self, cls: type | None) -> _Overlay:
        session = self._session()
        changed: dict[str, Any] = {}
        for table in (session._new, session._dirty):
            for doc_id, obj in table.items():
                if cls is not None and not isinstance(obj, cls):
                    continue
                state = state_of(obj)
                if state is not None and (doc_id in session._new or state.has_changes):
                    changed[doc_id] = obj
        return _Overlay(set(session._deleted), changed)

    def _prepare_query(self) -> None:
        session = self._session()
        session._check_open()
        if session.autoflush:
            session.flush()

    def _run_find(self, query: JSONDict, partition: str | None) -> JSONDict:
        session = self._session()
        try:
            if partition is not None:
                answer: JSONDict = session._call(self.backend.find, query, partition=partition)
            else:
                answer = session._call(self.backend.find, query)
        except QueryError as exc:
            raise _clear_error(exc, query) from None
        return answer

    def _pages(self, query: JSONDict, partition: str | None) -> Iterator[list[JSONDict]]:
        """Every page of a Mango query, ``query["limit"]`` documents per request.

        Pages continue by bookmark; a server that sends none (pouchdb-server 4.2.0) is paged
        with ``skip`` instead.
        """
        query = dict(query)
        size = int(query["limit"])
        offset = int(query.get("skip", 0))
        while True:
            answer = self._run_find(query, partition)
            docs: list[JSONDict] = list(answer.get("docs", ()))
            yield docs
            if len(docs) < size:
                return
            offset += len(docs)
            bookmark = answer.get("bookmark")
            if isinstance(bookmark, str) and bookmark and bookmark != "nil":
                query["bookmark"] = bookmark
                query.pop("skip", None)
            else:
                query["skip"] = offset

    # find --------------------------------------------------------------------------------

    def find(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        limit: int | None = None,
        skip: int | None = None,
        fields: Sequence[Any] | None = None,
        use_index: str | Sequence[str] | None = None,
        partition: str | None = None,
    ) -> list[Any]:
        """Documents of ``cls`` (and its subclasses) matching every criterion.

        Args:
            cls: the document class; subclasses are included, each loaded as its own class.
            criteria: field expressions (``Person.age > 30``) or raw selector dicts.
            sort: a field, ``field.desc()``, a name, or a list of them (needs an index).
            limit: at most this many results (None: all of them, paged by bookmark).
            skip: skip this many results first.
            fields: return only these fields, as plain dicts (not identity-mapped).
            use_index: the design document (and index name) to use.
            partition: query one partition of a partitioned database.

        Returns:
            Identity-mapped objects (or dicts with ``fields``), pending changes included.
        """
        self._prepare_query()
        spec = _Find(
            cls, _selector(cls, criteria), compile_sort(sort), fields, use_index, partition
        )
        overlay = self._overlay(cls)
        pending = overlay.is_pending() and fields is None
        if limit is None:
            found = list(self._iterate(spec, _PAGE, overlay))
            return _window(_sorted(found, spec.sort) if pending else found, skip, None)
        slack = len(overlay.deleted) + len(overlay.changed) if pending else 0
        query = spec.body((skip or 0) + limit + slack if pending else limit)
        if skip and not pending:
            query["skip"] = skip
        answer = self._run_find(query, partition)
        if fields is not None:
            return [doc for doc in answer.get("docs", ()) if doc.get("_id") not in overlay.deleted]
        objects = self._with_overlay(cls, answer.get("docs", ()), spec.selector, overlay)
        if not pending:
            return objects
        return _window(_sorted(objects, spec.sort), skip, limit)

    def find_iter(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        batch: int = _PAGE,
        fields: Sequence[Any] | None = None,
        use_index: str | Sequence[str] | None = None,
        partition: str | None = None,
    ) -> Iterator[Any]:
        """Stream every match, fetching ``batch`` documents per request (bookmark paging).

        Pending documents that match but are not on the server yet come last.
        """
        self._prepare_query()
        spec = _Find(
            cls, _selector(cls, criteria), compile_sort(sort), fields, use_index, partition
        )
        return self._iterate(spec, batch, self._overlay(cls))

    def _iterate(self, spec: _Find, batch: int, overlay: _Overlay) -> Iterator[Any]:
        if batch < 1:
            msg = "batch must be at least 1"
            raise ValueError(msg)
        seen: set[str] = set()
        matches = _matcher(spec.selector)
        for docs in self._pages(spec.body(batch), spec.partition):
            for doc in docs:
                doc_id = doc.get("_id")
                if doc_id in overlay.deleted:
                    continue
                if isinstance(doc_id, str):
                    seen.add(doc_id)
                if spec.fields is not None:
                    yield doc
                    continue
                obj = self._session()._load(doc, spec.cls)
                if doc_id in overlay.changed and not matches(dump(obj)):
                    continue
                yield obj
        if spec.fields is None:
            for doc_id, obj in overlay.changed.items():
                if doc_id not in seen and matches(dump(obj)):
                    yield obj

    def _with_overlay(
        self,
        cls: type | None,
        docs: Sequence[JSONDict],
        selector: dict[str, Any],
        overlay: _Overlay,
    ) -> list[Any]:
        session = self._session()
        matches = _matcher(selector) if overlay.changed else None
        found: list[Any] = []
        seen: set[str] = set()
        for doc in docs:
            doc_id = doc.get("_id")
            if doc_id in overlay.deleted:
                continue
            obj = session._load(doc, cls)
            if isinstance(doc_id, str):
                seen.add(doc_id)
            if matches is not None and doc_id in overlay.changed and not matches(dump(obj)):
                continue
            found.append(obj)
        if matches is not None:
            found += [
                obj
                for doc_id, obj in overlay.changed.items()
                if doc_id not in seen and matches(dump(obj))
            ]
        return found

    def first(
        self, cls: type[D], *criteria: Criteria, sort: Any = None, partition: str | None = None
    ) -> D | None:
        """The first match (in ``sort`` order), or None."""
        found = self.find(cls, *criteria, sort=sort, limit=1, partition=partition)
        return found[0] if found else None

    def count(self, cls: type[D], *criteria: Criteria, partition: str | None = None) -> int:
        """How many documents match, pending changes included."""
        self._prepare_query()
        selector = _selector(cls, criteria)
        overlay = self._overlay(cls)
        query: JSONDict = {"selector": selector, "fields": ["_id"], "limit": _PAGE}
        server_ids: set[str] = set()
        for docs in self._pages(query, partition):
            server_ids.update(doc["_id"] for doc in docs if "_id" in doc)
        total = len(server_ids - overlay.deleted - overlay.changed.keys())
        if overlay.changed:
            matches = _matcher(selector)
            total += sum(1 for obj in overlay.changed.values() if matches(dump(obj)))
        return total

    def all(self, cls: type[D], *, batch: int = _PAGE, partition: str | None = None) -> Iterator[D]:
        """Stream every document of ``cls`` (and subclasses), ``batch`` per request."""
        return self.find_iter(cls, batch=batch, partition=partition)

    # views -------------------------------------------------------------------------------

    def view(self, view: View | str, **options: Any) -> ViewResult:
        """Query a design-document view; rows' ``doc`` are identity-mapped objects.

        Args:
            view: a :class:`~couchmapper.query.View` declared on a class, or ``"ddoc/view"``.
            options: CouchDB's view options (``key``, ``startkey``, ``endkey``, ``keys``,
                ``include_docs``, ``reduce``, ``group_level``, ``limit``, ``descending``...,
                and ``partition``).

        Returns:
            The rows; pending deletions are dropped, and ``stale`` tells whether pending
            changes may make the answer out of date.
        """
        self._prepare_query()
        session = self._session()
        if isinstance(view, View):
            if view.owner is None or view.design is None:
                msg = "the view is not declared on a document class"
                raise TypeError(msg)
            ddoc, name, cls = view.design, view.name, view.owner
        else:
            ddoc, _, name = view.partition("/")
            cls = None
        keys = options.pop("keys", None)
        if options.get("partition") is None:
            options.pop("partition", None)
        try:
            answer = session._call(session.backend.view, ddoc, name, keys=keys, **options)
        except QueryError as exc:
            raise QueryError(
                exc.error, f"view {ddoc}/{name}: {exc.reason}", exc.status or 400
            ) from None
        overlay = self._overlay(None)
        rows = answer.get("rows", ())
        reduced = any(row.get("id") is None for row in rows)
        result = ViewResult()
        result.total_rows = answer.get("total_rows")
        result.offset = answer.get("offset")
        # Changed documents may change any row; deletions are dropped from map rows, but a
        # reduced value still counts them.
        result.stale = bool(overlay.changed) or (reduced and bool(overlay.deleted))
        for row in rows:
            doc_id = row.get("id")
            if doc_id is not None and doc_id in overlay.deleted:
                continue
            doc = row.get("doc")
            obj = None
            if isinstance(doc, dict) and "_id" in doc:
                target = cls if cls is not None and _is_instance_doc(doc, cls) else None
                obj = session._load(doc, target)
            result.append(Row(doc_id, row.get("key"), row.get("value"), obj))
        return result


def _matcher(selector: dict[str, Any]) -> Any:
    """The local matcher for ``selector`` (a selector it refuses is a clear QueryError)."""
    try:
        return mango.compile_selector(selector)
    except QueryError as exc:
        raise _clear_error(exc, {"selector": selector}) from None


def _clear_error(exc: QueryError, query: JSONDict) -> QueryError:
    """The server's Mango error, with what to do about it."""
    reason = exc.reason
    text = f"{exc.error} {reason}".lower()
    if "sort" in text and ("index" in text or exc.error == "no_usable_index"):
        fields = ", ".join(next(iter(item)) for item in query.get("sort") or () if item)
        hint = (
            f"sorting needs a Mango index on the sort fields ({fields}): declare "
            "`class Meta: indexes = [cm.Index(...)]` on the class and run "
            "cm.sync_design(db, Cls), or leave out sort="
        )
    elif "mixed" in text:
        hint = "sort every field in the same direction (all asc or all desc)"
    elif exc.error in ("invalid_selector", "invalid_operator", "bad_arg") or "operator" in text:
        hint = f"the selector is not valid Mango; check the raw selector {query['selector']!r}"
    elif "bookmark" in text:
        hint = "a bookmark is only valid for the query that returned it"
    else:
        hint = f"the query was {query!r}"
    return QueryError(exc.error, f"{reason} -- {hint}", exc.status or 400)


def _is_instance_doc(doc: Mapping[str, Any], cls: type) -> bool:
    info = model_info(cls)
    if info is None or info.discriminator is None:
        return True
    name = doc.get(info.discriminator)
    return name is None or name == info.type_name or name in info.subclasses


def _field_names(fields: Sequence[Any]) -> list[str]:
    names = []
    for item in fields:
        if isinstance(item, str):
            names.append(item)
        elif hasattr(item, "mango_name"):
            names.append(item.mango_name)
        else:
            msg = f"fields must be names or fields, not {item!r}"
            raise TypeError(msg)
    if "_id" not in names:
        names.insert(0, "_id")
    return names


def _sorted(objects: list[Any], sort_spec: list[Any] | None) -> list[Any]:
    dumped = [(dump(obj), obj) for obj in objects]
    if sort_spec:
        by_id = {id(doc): obj for doc, obj in dumped}
        ordered = mango.sort_docs([doc for doc, _ in dumped], sort_spec)
        missing = [obj for doc, obj in dumped if all(doc is not o for o in ordered)]
        return [by_id[id(doc)] for doc in ordered] + missing
    # Without a sort CouchDB answers in _id order (raw code points); keep that.
    return [obj for _, obj in sorted(dumped, key=lambda pair: str(pair[0].get("_id", "")))]


def _window(items: list[Any], skip: int | None, limit: int | None) -> list[Any]:
    start = skip or 0
    return items[start : start + limit] if limit is not None else items[start:]


# --------------------------------------------------------------------------------------
# Design documents.


def sync_design(db: Backend | Session, *classes: type) -> dict[str, str]:
    """Create or update the indexes and views declared on ``classes``, idempotently.

    Indexes go to ``_design/cm-<type>-idx`` (Mango), views to ``_design/cm-<type>``
    (JavaScript). A design document whose views are already as declared is not written
    again (no new revision).

    Returns:
        What happened, keyed ``"_design/<ddoc>/<index name>"`` for indexes (``"created"`` or
        ``"exists"``) and ``"_design/<ddoc>"`` for view design documents (``"created"``,
        ``"updated"`` or ``"unchanged"``).
    """
    backend: Backend = db.backend if hasattr(db, "backend") else db
    outcome: dict[str, str] = {}
    designs: dict[str, dict[str, dict[str, str]]] = {}
    done: set[type] = set()
    for cls in classes:
        owner = _meta_owner(cls)
        if owner is not None and owner not in done:
            done.add(owner)
            for index in declared_indexes(owner):
                ddoc, name, result = _create_index(backend, design_name(owner) + "-idx", index)
                outcome[f"_design/{ddoc}/{name}"] = result
        for name, view in declared_views(cls).items():
            designs.setdefault(view.design or design_name(cls), {})[name] = view.definition()
    for ddoc, views in designs.items():
        outcome[f"_design/{ddoc}"] = _put_views(backend, f"_design/{ddoc}", views)
    return outcome


def _meta_owner(cls: type) -> type | None:
    """The class whose own ``Meta`` declares the indexes ``cls`` has (itself or a base)."""
    for klass in cls.__mro__:
        meta = vars(klass).get("Meta")
        if meta is not None and getattr(meta, "indexes", None):
            return klass
    return None


def _create_index(backend: Backend, ddoc: str, index: Index) -> tuple[str, str, str]:
    body: JSONDict = {
        "index": {"fields": list(index.fields)},
        "ddoc": ddoc,
        "name": index.index_name(),
        "type": "json",
    }
    if index.partial is not None:
        body["index"]["partial_filter_selector"] = index.partial
    answer = backend.create_index(body)
    return ddoc, index.index_name(), str(answer.get("result", "created"))


def _put_views(backend: Backend, ddoc_id: str, views: dict[str, dict[str, str]]) -> str:
    try:
        current = backend.get(ddoc_id)
    except NotFoundError:
        current = None
    wanted: JSONDict = {"_id": ddoc_id, "language": "javascript", "views": views}
    if current is not None:
        if current.get("views") == views and current.get("language", "javascript") == "javascript":
            return "unchanged"
        # Keep what else the design document holds (options, filters, validate_doc_update).
        wanted = {**current, "language": "javascript", "views": views}
    backend.put(wanted)
    return "updated" if current is not None else "created"
