"""What the commands share: opening a database, finding a module's classes, progress, errors.

Every URL a command shows goes through :func:`~couchmapper._url.redact_url`, and every
backend error is shown as its (already redacted) message, never with a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from couchmapper._url import redact_text, redact_url, split_credentials
from couchmapper.backends.base import Backend
from couchmapper.connect import connect
from couchmapper.exceptions import CouchMapperError
from couchmapper.model.registry import model_info

__all__ = [
    "all_docs_pages",
    "document_classes",
    "open_database",
    "progress",
    "reported",
    "shown",
]

PAGE = 500


def shown(url: str) -> str:
    """A URL as a command prints it: never with its password."""
    return redact_url(url)


def _clean(url: str, text: str) -> str:
    """An error text with the URL's credentials masked (in URLs and literally)."""
    credentials = split_credentials(url)[1]
    return redact_text(text, [credentials[1]] if credentials else [])


def open_database(url: str, *, create: bool = False) -> Backend:
    """The database a URL names (``http(s)://...`` or ``memory://name``)."""
    try:
        return connect(url, create=create)
    except (CouchMapperError, ValueError) as exc:
        msg = f"cannot open {shown(url)}: {_clean(url, str(exc))}"
        raise click.ClickException(msg) from None


@contextmanager
def reported(url: str) -> Iterator[None]:
    """Turn a backend error into a one-line error naming the (redacted) URL."""
    try:
        yield
    except CouchMapperError as exc:
        msg = f"{shown(url)}: {_clean(url, str(exc))}"
        raise click.ClickException(msg) from None


def load_module(target: str) -> Any:
    """A module by dotted name, or by the path of a ``.py`` file."""
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            msg = f"no such file: {target}"
            raise click.BadParameter(msg, param_hint="MODULE")
        for loaded in list(sys.modules.values()):
            # Already imported (type names are global: a second copy could not register).
            where = getattr(loaded, "__file__", None)
            if where is not None and Path(where).resolve() == path.resolve():
                return loaded
        name = f"_couchmapper_cli_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            msg = f"cannot import {target}"
            raise click.BadParameter(msg, param_hint="MODULE")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path:
        sys.path.insert(0, "")  # a module in the current directory, as `python -m` finds it
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        msg = f"cannot import {target}: {exc}"
        raise click.BadParameter(msg, param_hint="MODULE") from None


def document_classes(target: str) -> list[type]:
    """The Document classes a module defines or imports, in the order it names them."""
    module = load_module(target)
    found: list[type] = []
    for value in vars(module).values():
        if isinstance(value, type) and value not in found:
            info = model_info(value)
            if info is not None and info.is_document:
                found.append(value)
    if not found:
        msg = f"{target} has no Document classes"
        raise click.BadParameter(msg, param_hint="MODULE")
    return found


def all_docs_pages(
    backend: Backend, *, after: str | None = None, page: int = PAGE
) -> Iterator[list[dict[str, Any]]]:
    """Every stored document, a page at a time, in id order (only one page in memory)."""
    while True:
        options: dict[str, Any] = {"include_docs": True, "limit": page}
        if after is not None:
            options.update(startkey=after, skip=1)
        rows = backend.all_docs(**options)["rows"]
        docs = [row["doc"] for row in rows if isinstance(row.get("doc"), dict)]
        if docs:
            yield docs
        if len(rows) < page:
            return
        after = rows[-1]["id"]


def progress(total: int | None, label: str) -> Progress:
    """A rich progress bar on stderr (documents done of ``total``)."""
    console = Console(stderr=True)
    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=console, transient=False, disable=not console.is_terminal)
