"""The query methods of :class:`~couchmapper.Session` (find, find_iter, count, view...).

They are a mixin with one user, the session, so that ``orm/session.py`` keeps to the
lifecycle and the flush. Each method checks the session and hands the query to the session's
``Querying`` (or ``Paging``), which read the pending work for read-your-writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from couchmapper.model.base import Document
from couchmapper.orm.paging import Page, Paging
from couchmapper.orm.pending import PendingWork
from couchmapper.orm.querying import PAGE, Querying, ViewResult, find_spec, split_view_name
from couchmapper.query import Criteria, View

if TYPE_CHECKING:
    from couchmapper.orm.merge import WriteResult

__all__ = ["SessionQueries"]

D = TypeVar("D", bound=Document)


class SessionQueries:
    """Queries over one session (mixed into :class:`~couchmapper.orm.session.Session`)."""

    if TYPE_CHECKING:  # set by Session.__init__ (here for the type checker only)
        pending: PendingWork
        autoflush: bool
        page_key: bytes
        _queries: Querying
        _paging: Paging

        def _check_open(self, action: str = "use it") -> None: ...

        def flush(
            self, *, progress: Callable[[int, int], None] | None = None
        ) -> list[WriteResult]: ...

    @overload
    def find(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        limit: int | None = None,
        skip: int | None = None,
        fields: None = None,
        use_index: str | Sequence[str] | None = None,
        partition: str | None = None,
    ) -> list[D]: ...
    @overload
    def find(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        limit: int | None = None,
        skip: int | None = None,
        fields: Sequence[Any],
        use_index: str | Sequence[str] | None = None,
        partition: str | None = None,
    ) -> list[dict[str, Any]]: ...
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

        Raises:
            QueryLoadError: stored documents that match could not be loaded (a value of the
                wrong type, nested too deep...): one ValidationError each, after every other
                document was loaded; ``results`` holds what this would have returned.
        """
        self._prepare_query()
        spec = find_spec(
            cls, criteria, sort=sort, fields=fields, use_index=use_index, partition=partition
        )
        return self._queries.find(spec, limit, skip)

    @overload
    def find_iter(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        batch: int = PAGE,
        fields: None = None,
        use_index: str | Sequence[str] | None = None,
        partition: str | None = None,
    ) -> Iterator[D]: ...
    @overload
    def find_iter(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        batch: int = PAGE,
        fields: Sequence[Any],
        use_index: str | Sequence[str] | None = None,
        partition: str | None = None,
    ) -> Iterator[dict[str, Any]]: ...
    def find_iter(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        batch: int = PAGE,
        fields: Sequence[Any] | None = None,
        use_index: str | Sequence[str] | None = None,
        partition: str | None = None,
    ) -> Iterator[Any]:
        """Stream every match, fetching ``batch`` documents per request (bookmark paging).

        With ``sort=``, pending documents that match are merged in at their sort position as
        the stream passes it; without, pending documents not on the server come last. Stored
        documents that cannot be loaded are left out, and a :class:`QueryLoadError` naming
        each is raised when the stream ends.
        """
        self._prepare_query()
        spec = find_spec(
            cls, criteria, sort=sort, fields=fields, use_index=use_index, partition=partition
        )
        return self._queries.find_iter(spec, batch)

    def first(
        self, cls: type[D], *criteria: Criteria, sort: Any = None, partition: str | None = None
    ) -> D | None:
        """The first match (in ``sort`` order), or None."""
        found = self.find(cls, *criteria, sort=sort, limit=1, partition=partition)
        return found[0] if found else None

    def count(self, cls: type[D], *criteria: Criteria, partition: str | None = None) -> int:
        """How many documents match, pending changes included."""
        self._prepare_query()
        return self._queries.count(cls, *criteria, partition=partition)

    def all(
        self, cls: type[D], *, sort: Any = None, batch: int = PAGE, partition: str | None = None
    ) -> Iterator[D]:
        """Stream every document of ``cls`` (and subclasses), ``batch`` per request.

        ``sort=`` as for :meth:`find` (pending documents merged in at their sort position).
        """
        return self.find_iter(cls, sort=sort, batch=batch, partition=partition)

    def find_page(
        self,
        cls: type[D],
        *criteria: Criteria,
        sort: Any = None,
        limit: int = 20,
        page_token: str | None = None,
    ) -> Page[D]:
        """One page of a query, for stateless web APIs (see :class:`~couchmapper.Page`).

        Args:
            cls: the document class (subclasses included).
            criteria: expressions or selectors, as for :meth:`find`.
            sort: as for :meth:`find`; an indexed sort keeps pages exact while documents
                are added between requests (no document twice, none skipped).
            limit: documents per page.
            page_token: the ``next_token`` of the previous page (None: the first page).

        Returns:
            The page: ``items`` and ``next_token`` (None after the last page).

        Raises:
            PageTokenError: the token is forged, altered, signed with another ``page_key``
                or made for another query (nothing is sent).
            SessionStateError: the session holds unflushed changes of ``cls``.
        """
        self._check_open()
        spec = find_spec(cls, criteria, sort=sort, fields=None, use_index=None, partition=None)
        return self._paging.page(spec, limit, page_token, self.page_key)

    def view(self, view: View | str, **options: Any) -> ViewResult:
        """Query a design-document view; rows' ``doc`` are identity-mapped objects.

        Args:
            view: a :class:`~couchmapper.query.View` declared on a class, ``"ddoc/view"``,
                python-couchdb's ``"_design/ddoc/_view/view"``, or ``"_all_docs"`` (every
                document by id, as python-couchdb accepts it).
            options: CouchDB's view options (``key``, ``startkey``, ``endkey``, ``keys``,
                ``include_docs``, ``reduce``, ``group_level``, ``limit``, ``descending``...,
                and ``partition``).

        Returns:
            The rows; pending deletions are dropped, and ``stale`` tells whether pending
            changes may make the answer out of date.

        Raises:
            QueryLoadError: rows' documents that could not be loaded (each named); ``results``
                holds the rows, those without their ``doc``.
        """
        if isinstance(view, str) and view != "_all_docs":
            view = "/".join(split_view_name(view))  # also python-couchdb's long form
        self._prepare_query()
        return self._queries.view(view, **options)

    def _prepare_query(self) -> None:
        # Queries made by receivers during a flush read the pending state through the
        # read-your-writes overlay; autoflush must not start a flush inside the flush.
        self._check_open()
        if self.autoflush and not self.pending.flushing:
            self.flush()
