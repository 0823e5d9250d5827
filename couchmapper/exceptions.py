"""Exceptions raised by couchmapper.

Every error derives from one root, and every error carries structured attributes so callers
never have to parse messages::

    CouchMapperError
    ├── BackendError            status, error, reason: what the server (or the memory engine) said
    │   ├── NotFoundError       404 (database, document, attachment, view)
    │   │   └── DocumentNotFound    doc_id
    │   ├── ConflictError       409 for one document: doc_id, rev (and base/mine/theirs on rebase)
    │   ├── PreconditionFailed  412 (database exists, bad attachment stub)
    │   ├── QueryError          400 from Mango or a view: invalid selector, no usable index...
    │   ├── EncodingError       400 "invalid UTF-8 JSON" refused before sending: doc_id, path
    │   └── BackendUnavailable  no answer: connection refused or cut, timeout (status is None)
    ├── ExpressionError         a query expression refused when built (also a TypeError)
    ├── FlushError              failures: one FlushFailure per document that was not written
    ├── ValidationError         doc_id and errors: (field path, expected type, message) each
    │   ├── QueryLoadError      failures (one ValidationError per document) and results
    │   └── SchemaVersionError  doc_id, stored and current schema versions (Meta.version)
    ├── SessionStateError       an illegal lifecycle move; the message says what to do instead
    ├── PageTokenError          a page token that is forged, altered or of another query
    ├── AttachmentError         doc_id, name: an attachment refused, unreadable or changed
    └── HookLimitError          flush hook rounds kept producing changes past the round limit

Messages never contain credentials: backends strip them from URLs before building errors.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "AttachmentError",
    "BackendError",
    "BackendUnavailable",
    "ConflictError",
    "CouchMapperError",
    "DocumentNotFound",
    "EncodingError",
    "ExpressionError",
    "FieldError",
    "FlushError",
    "FlushFailure",
    "HookLimitError",
    "InsecureTransportWarning",
    "NotFoundError",
    "PageTokenError",
    "PreconditionFailed",
    "QueryError",
    "QueryLoadError",
    "SchemaVersionError",
    "SessionStateError",
    "ValidationError",
]


class CouchMapperError(Exception):
    """The root of every error couchmapper raises."""


class InsecureTransportWarning(UserWarning):
    """Credentials are about to travel in clear text: plain ``http://`` to a non-loopback host.

    Warned once per server and user, when the backend is built (before any request). Use
    ``https://``, or silence it where the network is trusted::

        warnings.simplefilter("ignore", cm.InsecureTransportWarning)
    """


class BackendError(CouchMapperError):
    """The server (or the memory engine) refused a request.

    Attributes:
        status: the HTTP status, or None when no answer arrived.
        error: CouchDB's short error name, e.g. ``"conflict"`` or ``"not_found"``.
        reason: CouchDB's explanation, e.g. ``"Document update conflict."``.
    """

    def __init__(self, status: int | None, error: str, reason: str) -> None:
        self.status = status
        self.error = error
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.status} {self.error}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.error, self.reason))


class NotFoundError(BackendError):
    """The database, document, attachment or view does not exist (404)."""

    def __init__(self, error: str = "not_found", reason: str = "missing") -> None:
        super().__init__(404, error, reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error, self.reason))


class DocumentNotFound(NotFoundError):
    """A document does not exist; ``reason`` is ``"missing"`` or ``"deleted"`` as in CouchDB."""

    def __init__(self, doc_id: str, reason: str = "missing") -> None:
        self.doc_id = doc_id
        super().__init__("not_found", reason)

    def _message(self) -> str:
        return f"document {self.doc_id!r} not found ({self.reason})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.doc_id, self.reason))


class ConflictError(BackendError):
    """A write named a revision that is not the current one (409).

    When a ``"rebase"`` flush finds that this session and another writer changed the same
    field, ``paths`` lists the overlapping field paths and ``base``/``mine``/``theirs`` hold
    the document as loaded, as this session wants it, and as the server has it now.
    """

    def __init__(
        self,
        doc_id: str | None = None,
        rev: str | None = None,
        reason: str = "Document update conflict.",
        *,
        paths: Sequence[str] = (),
        base: dict[str, Any] | None = None,
        mine: dict[str, Any] | None = None,
        theirs: dict[str, Any] | None = None,
    ) -> None:
        self.doc_id = doc_id
        self.rev = rev
        self.paths = tuple(paths)
        self.base = base
        self.mine = mine
        self.theirs = theirs
        super().__init__(409, "conflict", reason)

    def _message(self) -> str:
        where = f"document {self.doc_id!r}" if self.doc_id is not None else "document"
        text = f"{where}: {self.reason}"
        if self.rev is not None:
            text += f" (sent rev {self.rev})"
        if self.paths:
            text += f"; both sides changed {', '.join(self.paths)}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        extra = {"paths": self.paths, "base": self.base, "mine": self.mine, "theirs": self.theirs}
        return (_rebuild_conflict, (type(self), self.doc_id, self.rev, self.reason, extra))


def _rebuild_conflict(
    cls: type[ConflictError],
    doc_id: str | None,
    rev: str | None,
    reason: str,
    extra: dict[str, Any],
) -> ConflictError:
    """Unpickle a :class:`ConflictError` with its keyword-only attributes."""
    return cls(doc_id, rev, reason, **extra)


class PreconditionFailed(BackendError):
    """A precondition failed (412): the database already exists, or a bad attachment stub."""

    def __init__(self, error: str = "file_exists", reason: str = "") -> None:
        super().__init__(412, error, reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error, self.reason))


class QueryError(BackendError):
    """A query was refused: invalid selector, sort without an index, bad view options."""

    def __init__(self, error: str, reason: str, status: int = 400) -> None:
        super().__init__(status, error, reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error, self.reason, self.status))


class EncodingError(BackendError):
    """A document holds a value that cannot be sent as UTF-8 JSON; refused before sending.

    CouchDB answers such a body (a lone surrogate such as ``"\\ud800"``) with 400
    ``bad_request`` "invalid UTF-8 JSON" for the whole request; both backends refuse it with
    that status, error and reason before anything is sent or stored, and name the place.

    Attributes:
        doc_id: the document's id (None for a body that is not a document, or has no id).
        path: the field path, e.g. ``"meta.tags[1]"`` (a key's own path for a bad key).
        problem: what is wrong with the value there.
    """

    def __init__(self, doc_id: str | None, path: str, problem: str) -> None:
        self.doc_id = doc_id
        self.path = path
        self.problem = problem
        super().__init__(400, "bad_request", "invalid UTF-8 JSON")

    def _message(self) -> str:
        where = f"document {self.doc_id!r}" if self.doc_id is not None else "the request body"
        return (
            f"{where}, field {self.path or '(top level)'}: {self.problem}; refused before "
            f"sending (CouchDB answers {self.status} {self.error}: {self.reason})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.doc_id, self.path, self.problem))


class BackendUnavailable(BackendError):
    """No answer arrived: the connection was refused, cut or timed out.

    A flush that fails this way keeps every change pending; flushing again is safe.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(None, "unavailable", reason)

    def _message(self) -> str:
        return f"server unavailable: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


class ExpressionError(CouchMapperError, TypeError):
    """A query expression (or sort) that cannot mean what it says, refused when it is built.

    For example an ordering (``<``, ``>``, ``sort=``) on a ``Decimal`` field: Decimals are
    stored as strings, which CouchDB compares character by character. The message says why
    and what to do instead. Also a :class:`TypeError`, as other misuses of expressions are.
    """


@attrs.frozen
class FlushFailure:
    """One document a flush could not write.

    Attributes:
        doc_id: the document's id.
        error: CouchDB's error name (``"conflict"``, ``"forbidden"``, ...).
        reason: CouchDB's explanation.
        exception: the exception behind the failure, when there was one.
    """

    doc_id: str
    error: str
    reason: str
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)


class FlushError(CouchMapperError):
    """Some documents of a flush were not written; they stay pending with their changes.

    Attributes:
        failures: one :class:`FlushFailure` per document that was not written.
    """

    def __init__(self, failures: Sequence[FlushFailure]) -> None:
        self.failures = tuple(failures)
        lines = [f"{len(self.failures)} document(s) not written:"]
        lines += [f"  {f.doc_id}: {f.error} ({f.reason})" for f in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more")
        super().__init__("\n".join(lines))

    @property
    def doc_ids(self) -> list[str]:
        """The ids of the documents that were not written."""
        return [f.doc_id for f in self.failures]


@attrs.frozen
class FieldError:
    """One bad value in a document.

    Attributes:
        path: the field path, e.g. ``"address.city"`` or ``"tags[2]"``.
        expected: the expected type, as written in the class.
        message: what was wrong.
    """

    path: str
    expected: str
    message: str


class ValidationError(CouchMapperError, ValueError, TypeError):
    """A document holds values of the wrong type; every bad field is listed together.

    Attributes:
        doc_id: the document's id (None for a document that has none yet).
        errors: one :class:`FieldError` per bad value.
    """

    def __init__(
        self, doc_id: str | None, errors: Sequence[FieldError], cls_name: str = ""
    ) -> None:
        self.doc_id = doc_id
        self.errors = tuple(errors)
        self.cls_name = cls_name
        what = f"{cls_name} document" if cls_name else "document"
        head = f"{what} {doc_id!r}" if doc_id is not None else f"new {what}"
        lines = [f"{head}: {len(self.errors)} invalid field(s)"]
        lines += [f"  {e.path}: expected {e.expected}: {e.message}" for e in self.errors]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.doc_id, self.errors, self.cls_name))


class QueryLoadError(ValidationError):
    """Documents a query found that could not be loaded; every other document was.

    One stored document that does not fit its class never breaks a query over the others:
    ``find()``, ``view()`` and ``get_many()`` load every document they can, then raise this
    with the results they would have returned; a stream (``find_iter()``, ``all()``) hands out
    every document it can and raises this at its end.

    Attributes:
        failures: one :class:`ValidationError` per document that could not be loaded, in the
            order the query met them.
        results: what the query returns without those documents (empty for a stream, whose
            objects were handed out already).

    ``doc_id``, ``errors`` and ``cls_name`` are the first failure's, so a handler written for
    :class:`ValidationError` still sees a document id and its fields.
    """

    def __init__(self, failures: Sequence[ValidationError], results: Sequence[Any] = ()) -> None:
        self.failures = tuple(failures)
        self.results: list[Any] = list(results)
        first = self.failures[0]
        super().__init__(first.doc_id, first.errors, first.cls_name)
        lines = [f"{len(self.failures)} document(s) the query found could not be loaded:"]
        lines += [f"  {failure}".replace("\n", "\n  ") for failure in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more")
        self.args = ("\n".join(lines),)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.failures, self.results))


class SchemaVersionError(ValidationError):
    """A stored document's schema version is one the class cannot load.

    Either newer than the class (``Meta.version``; never silently downgraded), or older than
    the first upgrade step the class declares.

    Attributes:
        stored: the document's version.
        current: the class's version.
        missing: the version with no upgrade step (None for a newer document).
    """

    def __init__(
        self,
        doc_id: str | None,
        cls_name: str,
        stored: int,
        current: int,
        missing: int | None = None,
        *,
        field: str = "schema_version",
    ) -> None:
        self.stored = stored
        self.current = current
        self.missing = missing
        if missing is None:
            message = (
                f"the document is schema version {stored}, newer than {cls_name} "
                f"(version {current}); load it with code of version {stored} or later "
                "(or set `class Meta: newer = 'read_only'` to read it without writing)"
            )
        else:
            message = (
                f"the document is schema version {stored}; {cls_name} (version {current}) "
                f"has no upgrade step from version {missing}"
            )
        error = FieldError(field, f"version <= {current}", message)
        super().__init__(doc_id, [error], cls_name)

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild = functools.partial(type(self), field=self.errors[0].path)
        return (rebuild, (self.doc_id, self.cls_name, self.stored, self.current, self.missing))


class PageTokenError(CouchMapperError, ValueError):
    """A ``page_token`` given to ``find_page`` is not one this app made for this query.

    Its signature does not match (altered, forged, or signed with another ``page_key``), or
    it belongs to another query. Nothing is sent to the server.
    """


class SessionStateError(CouchMapperError):
    """An object was moved through its lifecycle illegally, or the session is closed."""


class HookLimitError(CouchMapperError):
    """Flush hooks kept producing changes past the round limit; nothing was sent.

    Attributes:
        receivers: qualified names of the receivers that still changed documents in the
            last rounds (a cycle's receivers), in the order they did.
        rounds: the round limit that was reached.
    """

    def __init__(self, rounds: int, receivers: Sequence[str]) -> None:
        self.rounds = rounds
        self.receivers = tuple(receivers)
        names = ", ".join(self.receivers) or "(unknown)"
        super().__init__(
            f"flush hooks still produced changes after {rounds} rounds; nothing was sent. "
            f"Receivers still changing documents in the last rounds: {names}"
        )


class AttachmentError(CouchMapperError):
    """An attachment was refused before sending, could not be read, or changed on the server.

    Attributes:
        doc_id: the document's id (None for a document without one yet).
        name: the attachment's name.
        problem: what went wrong, in words.
    """

    def __init__(self, doc_id: str | None, name: str, problem: str) -> None:
        self.doc_id = doc_id
        self.name = name
        self.problem = problem
        super().__init__(f"attachment {name!r} of document {doc_id!r}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.doc_id, self.name, self.problem))
