"""``couchmapper check MODULE --url URL``: validate every stored document of MODULE's classes."""

from __future__ import annotations

from typing import Any

import click

from couchmapper.cli.common import (
    all_docs_pages,
    document_classes,
    open_database,
    progress,
    reported,
    shown,
)
from couchmapper.exceptions import ValidationError
from couchmapper.model.base import load
from couchmapper.model.registry import model_info

__all__ = ["check", "classes_by_type"]


def classes_by_type(classes: list[type]) -> dict[tuple[str, str], type]:
    """``(discriminator key, type name)`` -> class, for the classes and their subclasses."""
    found: dict[tuple[str, str], type] = {}
    pending = list(classes)
    while pending:
        cls = pending.pop()
        info = model_info(cls)
        if info is None or not info.is_document:
            continue
        if info.discriminator is not None and info.type_name is not None:
            found.setdefault((info.discriminator, info.type_name), cls)
        pending.extend(cls.__subclasses__())
    return found


def _class_of(doc: dict[str, Any], types: dict[tuple[str, str], type]) -> type | None:
    for (key, name), cls in types.items():
        if doc.get(key) == name:
            return cls
    return None


@click.command("check")
@click.argument("module")
@click.option("--url", required=True, help="The database: http(s)://[user:pass@]host:port/db.")
@click.option("--page", default=500, show_default=True, help="Documents read per request.")
def check(module: str, url: str, page: int) -> None:
    """Load every stored document of MODULE's classes and report those that do not fit.

    Each invalid document is printed with its id, the field path and the expected type.
    The database is read a page at a time, so memory stays flat however many documents it
    has. Exits with status 1 when any document is invalid.
    """
    types = classes_by_type(document_classes(module))
    backend = open_database(url)
    checked = invalid = 0
    with reported(url):
        total = int(backend.info().get("doc_count") or 0)
        with progress(total, "checking") as bar:
            task = bar.add_task("check", total=total)
            for docs in all_docs_pages(backend, page=page):
                for doc in docs:
                    cls = _class_of(doc, types)
                    if cls is None:
                        continue
                    checked += 1
                    try:
                        load(cls, doc)
                    except ValidationError as exc:
                        invalid += 1
                        for error in exc.errors:
                            click.echo(
                                f"{exc.doc_id}\t{error.path or '.'}\texpected {error.expected}"
                                f"\t{error.message}"
                            )
                bar.advance(task, len(docs))
    click.echo(f"{shown(url)}: {checked} document(s) checked, {invalid} invalid", err=True)
    if invalid:
        raise SystemExit(1)
