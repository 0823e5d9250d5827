"""Queries of a session: Mango ``find``, views, counting and streaming, with read-your-writes.

Results reflect the session's pending state: documents deleted in the session never appear;
new and changed documents are matched locally with the same Mango matcher the memory backend
uses (:mod:`couchmapper.mango`), so they appear when they match and disappear when a pending
change made them stop matching; sort, skip and limit are applied after that overlay.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from couchmapper import mango
from couchmapper._couch.collation import raw_key
from couchmapper._types import JSONDict
from couchmapper.exceptions import NotFoundError, QueryError, QueryLoadError, ValidationError
from couchmapper.model.base import dump, state_of
from couchmapper.model.registry import model_info
from couchmapper.orm.part import SessionPart
from couchmapper.query import Criteria, View, compile_criteria, compile_sort

__all__ = ["PAGE", "Find", "Querying", "Row", "ViewResult", "find_spec", "split_view_name"]

PAGE = 1000


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
class Find:
    """One Mango query as the session runs it (made by :func:`find_spec`)."""

    cls: type | None
    selector: dict[str, Any]
    sort: list[Any] | None = None
    fields: Sequence[Any] | None = None
    use_index: str | Sequence[str] | None = None
    partition: str | None = None

    def body(self, limit: int | None, *, sort_fields: bool = False) -> JSONDict:
        """The ``_find`` request; ``sort_fields`` adds the sort fields to ``fields``.

        (The overlay needs them to place pending documents; they are projected away after.)
        """
        query: JSONDict = {"selector": self.selector}
        if self.sort:
            query["sort"] = self.sort
        if self.use_index is not None:
            query["use_index"] = self.use_index
        if self.fields is not None:
            names = _field_names(self.fields)
            if sort_fields and self.sort:
                names += [n for n in _sort_names(self.sort) if n not in names]
            query["fields"] = names
        else:
            query["conflicts"] = True  # whole documents: their stored conflicts come along
        if limit is not None:
            query["limit"] = limit
        return query


def find_spec(
    cls: type,
    criteria: Sequence[Criteria],
    *,
    sort: Any,
    fields: Sequence[Any] | None,
    use_index: str | Sequence[str] | None,
    partition: str | None,
) -> Find:
    """The query ``find(cls, *criteria, sort=..., ...)`` runs."""
    return Find(
        cls, _selector(cls, criteria), compile_sort(sort, cls), fields, use_index, partition
    )


@attrs.define
class _Overlay:
    """The session's pending documents that a query must account for."""

    deleted: set[str]
    changed: dict[str, Any]  # id -> object with pending changes (new or dirty)

    def is_pending(self) -> bool:
        return bool(self.deleted or self.changed)

    def hides(self, doc_id: Any) -> bool:
        """The server's copy of ``doc_id`` is out of date (deleted or changed here)."""
        return doc_id in self.deleted or doc_id in self.changed


@attrs.frozen
class _Hit:
    """One result before it is handed out: ``doc`` is the JSON its sort position comes from."""

    doc: Mapping[str, Any]
    result: Any


class _Order:
    """The order of a Mango ``sort`` (or ``_id`` order without one), over JSON documents.

    Keys follow :func:`couchmapper.mango.sort_docs`: the sort fields by view collation (raw
    code points for a sort on ``_id`` alone), then ``_id``; a document lacking a sort field
    has no key (a sorting index does not hold it).
    """

    def __init__(self, sort: list[Any] | None) -> None:
        self.sorted = bool(sort)
        names = [next(iter(item)) if isinstance(item, dict) else item for item in sort or ()]
        self.paths = [mango.parse_field(str(name)) for name in names]
        self.descending = any(
            isinstance(item, dict) and next(iter(item.values()), None) == "desc"
            for item in sort or ()
        )
        self._key_of = raw_key if self.paths in ([], [("_id",)]) else mango.collation_key

    def key(self, doc: Mapping[str, Any]) -> tuple[Any, ...] | None:
        values = [mango.get_field(doc, path) for path in self.paths]
        if any(value is mango.MISSING for value in values):
            return None
        return (*map(self._key_of, values), raw_key(doc.get("_id")))

    def before(self, a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
        """``a`` comes before ``b`` in this order."""
        return a > b if self.descending else a < b

    def arrange(self, hits: list[_Hit]) -> list[_Hit]:
        keyed = [(self.key(hit.doc), hit) for hit in hits]
        kept = [(key, hit) for key, hit in keyed if key is not None]
        kept.sort(key=lambda pair: pair[0], reverse=self.descending)
        return [hit for _, hit in kept]


class Querying(SessionPart):
    """The queries of one session, over its backend and its pending work.

    The session's query methods check that it is open and autoflush, then call these.
    """

    # Shared plumbing ---------------------------------------------------------------------

    def _overlay(self, cls: type | None, partition: str | None = None) -> _Overlay:
        """The pending state a query of ``cls`` sees (only ``partition``'s ids, if given)."""
        pending = self.pending
        prefix = None if partition is None else f"{partition}:"
        changed: dict[str, Any] = {}
        for table in (pending.new, pending.dirty):
            for doc_id, obj in table.items():
                if cls is not None and not isinstance(obj, cls):
                    continue
                if prefix is not None and not doc_id.startswith(prefix):
                    continue
                state = state_of(obj)
                if state is not None and (doc_id in pending.new or state.has_changes):
                    changed[doc_id] = obj
        deleted = set(pending.deleted)
        if prefix is not None:
            deleted = {doc_id for doc_id in deleted if doc_id.startswith(prefix)}
        return _Overlay(deleted, changed)

    def _run_find(self, query: JSONDict, partition: str | None) -> JSONDict:
        find = self.session.backend.find
        try:
            if partition is not None:
                answer: JSONDict = self.traffic.call(find, query, partition=partition)
            else:
                answer = self.traffic.call(find, query)
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

    def _server_hit(
        self, doc: JSONDict, spec: Find, projected: bool, failures: list[ValidationError]
    ) -> _Hit | None:
        """A document from the server as a result (an object, or a dict with ``fields``).

        A document that cannot be loaded is None, its error added to ``failures``: one stored
        document that does not fit its class must not break the query over the others.
        """
        if spec.fields is None:
            try:
                return _Hit(doc, self.session.load_rows([doc], spec.cls)[0])
            except ValidationError as error:
                failures.append(error)
                return None
        if projected:
            return _Hit(doc, doc)
        return _Hit(doc, _project(doc, _field_names(spec.fields)))

    def _pending_hits(self, spec: Find, overlay: _Overlay) -> list[_Hit]:
        """The pending documents that match, matched locally (each as a result)."""
        if not overlay.changed:
            return []
        matches = _matcher(spec.selector)
        names = None if spec.fields is None else _field_names(spec.fields)
        hits = []
        for obj in overlay.changed.values():
            doc = dump(obj)
            if matches(doc):
                hits.append(_Hit(doc, obj if names is None else _project(doc, names)))
        return hits

    # find --------------------------------------------------------------------------------

    def find(self, spec: Find, limit: int | None, skip: int | None) -> list[Any]:
        """The matches of ``spec`` (see ``Session.find``).

        Raises:
            QueryLoadError: stored documents that match could not be loaded (a value of the
                wrong type, nested too deep...): one ValidationError each, after every other
                document was loaded; ``results`` holds what this would have returned.
        """
        failures: list[ValidationError] = []
        found = self._find_list(spec, limit, skip, failures)
        if failures:
            raise QueryLoadError(failures, found)
        return found

    def _find_list(
        self, spec: Find, limit: int | None, skip: int | None, failures: list[ValidationError]
    ) -> list[Any]:
        """The results of :meth:`find`; documents that cannot be loaded go to ``failures``."""
        cls, partition, fields = spec.cls, spec.partition, spec.fields
        overlay = self._overlay(cls, partition)
        pending = overlay.is_pending()
        if limit is None:
            found = list(self._stream(spec, PAGE, overlay, failures))
            if pending and not spec.sort:
                # Without a sort CouchDB answers in _id order (raw code points); keep that.
                found.sort(key=lambda item: raw_key(_id_of(item)))
            return _window(found, skip, None)
        if not pending:
            query = spec.body(limit)
            if skip:
                query["skip"] = skip
            docs = self._run_find(query, partition).get("docs", ())
            loaded = [self._server_hit(doc, spec, True, failures) for doc in docs]
            return [hit.result for hit in loaded if hit is not None]
        # Ask for enough extra rows that every pending document may take its place.
        slack = len(overlay.deleted) + len(overlay.changed)
        query = spec.body((skip or 0) + limit + slack, sort_fields=True)
        projected = "fields" not in query or query["fields"] == _field_names(fields or ())
        server_hits = [
            self._server_hit(doc, spec, projected, failures)
            for doc in self._run_find(query, partition).get("docs", ())
            if not overlay.hides(doc.get("_id"))
        ]
        hits = [hit for hit in server_hits if hit is not None]
        hits += self._pending_hits(spec, overlay)
        ordered = _Order(spec.sort).arrange(hits)
        return [hit.result for hit in _window(ordered, skip, limit)]

    def find_iter(self, spec: Find, batch: int) -> Iterator[Any]:
        """A stream of the matches of ``spec``, ``batch`` documents per request.

        Stored documents that cannot be loaded are left out, and a :class:`QueryLoadError`
        naming each is raised when the stream ends.
        """
        return self._iterate(spec, batch, self._overlay(spec.cls, spec.partition))

    def _iterate(self, spec: Find, batch: int, overlay: _Overlay) -> Iterator[Any]:
        if batch < 1:
            msg = "batch must be at least 1"
            raise ValueError(msg)
        return self._reporting_stream(spec, batch, overlay)

    def _reporting_stream(self, spec: Find, batch: int, overlay: _Overlay) -> Iterator[Any]:
        """The stream, then a :class:`QueryLoadError` for documents that could not load."""
        failures: list[ValidationError] = []
        yield from self._stream(spec, batch, overlay, failures)
        if failures:
            raise QueryLoadError(failures)

    def _stream(
        self, spec: Find, batch: int, overlay: _Overlay, failures: list[ValidationError]
    ) -> Iterator[Any]:
        order = _Order(spec.sort)
        pending = self._pending_hits(spec, overlay)
        if order.sorted:
            # Held back, and handed out when the stream passes their sort position.
            held: deque[_Hit] = deque(order.arrange(pending))
            pending_by_id: dict[str, _Hit] = {}
        else:
            held = deque()
            pending_by_id = {_id_of(hit.doc): hit for hit in pending}
        query = spec.body(batch, sort_fields=bool(held))
        projected = "fields" not in query or query["fields"] == _field_names(spec.fields or ())
        for docs in self._pages(query, spec.partition):
            for doc in docs:
                doc_id = doc.get("_id")
                if doc_id in overlay.deleted:
                    continue
                if doc_id in overlay.changed:
                    # Unsorted: a changed document that still matches keeps its place.
                    hit = pending_by_id.pop(doc_id, None)
                    if hit is not None:
                        yield hit.result
                    continue
                if held:
                    key = order.key(doc)
                    while held and key is not None:
                        first_key = order.key(held[0].doc)
                        if first_key is None or not order.before(first_key, key):
                            break
                        yield held.popleft().result
                hit = self._server_hit(doc, spec, projected, failures)
                if hit is not None:
                    yield hit.result
        for hit in held:
            yield hit.result
        for hit in pending_by_id.values():
            yield hit.result

    def count(self, cls: type, *criteria: Criteria, partition: str | None = None) -> int:
        """How many documents match, pending changes included."""
        selector = _selector(cls, criteria)
        overlay = self._overlay(cls, partition)
        query: JSONDict = {"selector": selector, "fields": ["_id"], "limit": PAGE}
        server_ids: set[str] = set()
        for docs in self._pages(query, partition):
            server_ids.update(doc["_id"] for doc in docs if "_id" in doc)
        total = len(server_ids - overlay.deleted - overlay.changed.keys())
        if overlay.changed:
            matches = _matcher(selector)
            total += sum(1 for obj in overlay.changed.values() if matches(dump(obj)))
        return total

    # views -------------------------------------------------------------------------------

    def view(self, view: View | str, **options: Any) -> ViewResult:
        """Query a design-document view or ``_all_docs``; pending deletions dropped."""
        session = self.session
        if isinstance(view, View):
            if view.owner is None or view.design is None:
                msg = "the view is not declared on a document class"
                raise TypeError(msg)
            ddoc, name, cls = view.design, view.name, view.owner
        else:
            ddoc, _, name = view.partition("/")
            cls = None
        keys = options.pop("keys", None)
        if options.get("include_docs") and "conflicts" not in options:
            options["conflicts"] = True  # loaded documents show their stored conflicts
        if options.get("partition") is None:
            options.pop("partition", None)
        try:
            if view == "_all_docs":
                answer = self.traffic.call(session.backend.all_docs, keys=keys, **options)
            else:
                answer = self.traffic.call(session.backend.view, ddoc, name, keys=keys, **options)
        except QueryError as exc:
            raise QueryError(
                exc.error, f"view {ddoc}/{name}: {exc.reason}", exc.status or 400
            ) from None
        except NotFoundError as exc:
            raise _missing_view(exc, ddoc, name, cls) from None
        overlay = self._overlay(None)
        rows = answer.get("rows", ())
        # A missing key of ``keys`` gives an error row with no id; it is not a reduced row.
        reduced = any(row.get("id") is None and "error" not in row for row in rows)
        result = ViewResult()
        result.total_rows = answer.get("total_rows")
        result.offset = answer.get("offset")
        # Changed documents may change any row; deletions are dropped from map rows, but a
        # reduced value still counts them.
        result.stale = bool(overlay.changed) or (reduced and bool(overlay.deleted))
        failures: list[ValidationError] = []
        for row in rows:
            doc_id = row.get("id")
            if doc_id is not None and doc_id in overlay.deleted:
                continue
            doc = row.get("doc")
            obj = None
            if isinstance(doc, dict) and "_id" in doc:
                target = cls if cls is not None and _is_instance_doc(doc, cls) else None
                try:
                    obj = session.load_rows([doc], target)[0]
                except ValidationError as error:
                    failures.append(error)  # the row stays, without its document
            result.append(Row(doc_id, row.get("key"), row.get("value"), obj))
        if failures:
            raise QueryLoadError(failures, result)
        return result


def _matcher(selector: dict[str, Any]) -> Any:
    """The local matcher for ``selector`` (a selector it refuses is a clear QueryError)."""
    try:
        return mango.compile_selector(selector)
    except QueryError as exc:
        raise _clear_error(exc, {"selector": selector}) from None


_SELECTOR_ERRORS = ("invalid_selector", "invalid_operator", "bad_arg", "invalid_field_name")


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
    elif exc.error in _SELECTOR_ERRORS or "operator" in text:
        hint = f"the selector is not valid Mango; check the raw selector {query['selector']!r}"
    elif "bookmark" in text:
        hint = "a bookmark is only valid for the query that returned it"
    else:
        hint = f"the query was {query!r}"
    return QueryError(exc.error, f"{reason} -- {hint}", exc.status or 400)


def _missing_view(exc: NotFoundError, ddoc: str, name: str, cls: type | None) -> NotFoundError:
    """The 404 of a view query, saying which view is missing and how to create it."""
    what = "the view" if exc.reason == "missing_named_view" else "the design document"
    owner = cls.__name__ if cls is not None else "Cls"
    reason = (
        f"view {ddoc}/{name} not found ({exc.reason}: {what} is not in the database) -- "
        f"create the declared views with cm.sync_design(db, {owner})"
    )
    return NotFoundError(exc.error, reason)


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


def _sort_names(sort: list[Any]) -> list[str]:
    return [str(next(iter(item)) if isinstance(item, dict) else item) for item in sort]


def _id_of(item: Any) -> str:
    found = item.get("_id") if isinstance(item, Mapping) else getattr(item, "id", None)
    return str(found or "")


def _project(doc: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """``doc`` cut down to ``names`` as CouchDB's ``fields`` does (dotted paths nest)."""
    out: dict[str, Any] = {}
    for name in names:
        path = mango.parse_field(name)
        value: Any = doc
        for part in path:
            if not isinstance(value, Mapping) or part not in value:
                break
            value = value[part]
        else:
            target = out
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
    return out


T = TypeVar("T")


def _window(items: list[T], skip: int | None, limit: int | None) -> list[T]:
    start = skip or 0
    return items[start : start + limit] if limit is not None else items[start:]


def split_view_name(name: str) -> tuple[str, str]:
    """``"ddoc/view"`` or ``"_design/ddoc/_view/view"`` (python-couchdb's forms) -> parts."""
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "_design" and parts[2] == "_view":
        return parts[1], parts[3]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    msg = f"view name must be 'ddoc/view' or '_design/ddoc/_view/view', not {name!r}"
    raise ValueError(msg)
