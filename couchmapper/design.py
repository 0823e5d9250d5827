"""Design documents of declared classes: ``sync_design`` writes their indexes and views.

Indexes declared in a class's ``Meta`` go to ``_design/cm-<type>-idx`` (Mango), views
declared with :class:`~couchmapper.query.View` to ``_design/cm-<type>`` (JavaScript).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from couchmapper._types import JSONDict
from couchmapper.backends.base import Backend
from couchmapper.exceptions import NotFoundError
from couchmapper.model.registry import model_info
from couchmapper.query import Index, declared_indexes, declared_views, design_name

if TYPE_CHECKING:
    from couchmapper.orm.session import Session

__all__ = ["sync_design"]


def sync_design(db: Backend | Session, *classes: type, dry_run: bool = False) -> dict[str, str]:
    """Create or update the indexes and views declared on ``classes``, idempotently.

    Indexes go to ``_design/cm-<type>-idx`` (Mango), views to ``_design/cm-<type>``
    (JavaScript). A design document whose views are already as declared is not written
    again (no new revision). With ``dry_run`` nothing is written: the answer says what
    would happen.

    Returns:
        What happened, keyed ``"_design/<ddoc>/<index name>"`` for indexes (``"created"`` or
        ``"exists"``) and ``"_design/<ddoc>"`` for view design documents (``"created"``,
        ``"updated"`` or ``"unchanged"``).
    """
    backend: Backend = db.backend if hasattr(db, "backend") else db
    outcome: dict[str, str] = {}
    designs: dict[str, dict[str, dict[str, str]]] = {}
    done: set[type] = set()
    existing = _existing_indexes(backend) if dry_run else set()
    for cls in classes:
        owner = _meta_owner(cls)
        if owner is not None and owner not in done:
            done.add(owner)
            for index in declared_indexes(owner):
                ddoc = design_name(owner) + "-idx"
                if dry_run:
                    name = index.index_name()
                    found = (f"_design/{ddoc}", name) in existing
                    outcome[f"_design/{ddoc}/{name}"] = "exists" if found else "created"
                    continue
                ddoc, name, result = _create_index(backend, ddoc, index)
                outcome[f"_design/{ddoc}/{name}"] = result
        for name, view in declared_views(cls).items():
            designs.setdefault(view.design or design_name(cls), {})[name] = view.definition()
    for ddoc, views in designs.items():
        outcome[f"_design/{ddoc}"] = _put_views(backend, f"_design/{ddoc}", views, dry_run)
    return outcome


def _existing_indexes(backend: Backend) -> set[tuple[str, str]]:
    """``(ddoc id, name)`` of the Mango indexes the database has."""
    listed = backend.list_indexes().get("indexes", [])
    return {(str(i.get("ddoc")), str(i.get("name"))) for i in listed if isinstance(i, dict)}


def _meta_owner(cls: type) -> type | None:
    """The class whose own ``Meta`` declares the indexes ``cls`` has (itself or a base)."""
    info = model_info(cls)
    return info.index_owner if info is not None else None


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


def _put_views(
    backend: Backend, ddoc_id: str, views: dict[str, dict[str, str]], dry_run: bool = False
) -> str:
    """Write ``views`` into the design document, keeping the views it has of other classes."""
    try:
        current = backend.get(ddoc_id)
    except NotFoundError:
        current = None
    if current is None:
        if not dry_run:
            backend.put({"_id": ddoc_id, "language": "javascript", "views": views})
        return "created"
    stored = current.get("views")
    stored = dict(stored) if isinstance(stored, dict) else {}
    language = current.get("language", "javascript")
    if language == "javascript" and all(stored.get(n) == v for n, v in views.items()):
        return "unchanged"
    if dry_run:
        return "updated"
    # Keep what else the design document holds (other views, options, filters...).
    backend.put({**current, "language": "javascript", "views": {**stored, **views}})
    return "updated"
