"""Models and helpers shared by the session integration tests (``test_session*.py``).

Type names are global, so every class here has a ``session-`` prefixed type name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from _proxy import RecordingProxy

import couchmapper as cm
from couchmapper.backends.base import Backend


class Note(cm.Embedded):
    """An embedded object for nested-path edits."""

    text: str
    stars: int = 0


class Task(cm.Document, type_name="session-task"):
    """An everyday document: scalars, a list, an embedded object."""

    title: str
    done: bool = False
    owner: str = ""
    tags: list[str] = cm.field(factory=list)
    note: Note | None = None


class Bug(Task, type_name="session-bug"):
    """A subclass of :class:`Task` (loads as itself when asked for a Task)."""

    severity: int = 1


class Other(cm.Document, type_name="session-other"):
    """A document unrelated to :class:`Task`."""

    value: int = 0


def _maximum(base: Any, mine: Any, theirs: Any) -> Any:
    """A custom merge rule: keep the larger value."""
    del base
    return max(mine, theirs)


class Counter(cm.Document, type_name="session-counter"):
    """A document with a merge rule on every kind of field."""

    name: str = ""
    label: str = ""
    hits: int = cm.field(default=0, merge="sum")
    members: set[str] = cm.field(factory=set, merge="union")
    history: list[str] = cm.field(factory=list, merge="union")
    best: int = cm.field(default=0, merge=_maximum)


class Pinned(cm.Document, type_name="session-pinned"):
    """A class whose own conflict policy is "overwrite" (``class Meta``)."""

    value: int = 0

    class Meta:
        """Class-level session options."""

        conflict = "overwrite"


def bulk_posts(proxy: RecordingProxy) -> list[list[dict[str, Any]]]:
    """The ``docs`` of every ``POST _bulk_docs`` the proxy saw, oldest first."""
    found = []
    for request in proxy.requests_to("_bulk_docs", method="POST"):
        assert isinstance(request.body, dict)
        found.append(list(request.body["docs"]))
    return found


def record_bulk_docs(backend: Backend) -> list[list[dict[str, Any]]]:
    """Wrap ``backend.bulk_docs`` so every request's documents are recorded, oldest first.

    Works on every backend (memory or server), unlike the proxy's record.
    """
    sent: list[list[dict[str, Any]]] = []
    plain = backend.bulk_docs

    def recording(docs: Any, **options: Any) -> Any:
        sent.append([dict(doc) for doc in docs])
        return plain(docs, **options)

    backend.bulk_docs = recording  # type: ignore[method-assign]
    return sent


def by_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Documents keyed by ``_id``."""
    return {doc["_id"]: doc for doc in docs}


def all_bodies(backend: Backend) -> dict[str, dict[str, Any]]:
    """Every live non-design document of the database, keyed by id.

    Without ``_rev`` and the write bookkeeping of classes with ``sum``/callable merge rules
    (``cm_write``, a fresh value for every write's edits, and ``cm_counted``, the tokens of
    the edits before it: docs/conflicts.md).
    """
    rows = backend.all_docs(include_docs=True)["rows"]
    out = {}
    for row in rows:
        if row["id"].startswith("_design/"):
            continue
        out[row["id"]] = {
            k: v for k, v in row["doc"].items() if k not in ("_rev", "cm_write", "cm_counted")
        }
    return out


def iter_ids(prefix: str, count: int) -> Iterator[str]:
    """``prefix-000``, ``prefix-001``, ..."""
    for index in range(count):
        yield f"{prefix}-{index:03d}"
