"""``couchmapper export URL FILE`` and ``couchmapper import FILE URL``: JSON Lines dumps.

One line per document: the winning revision with its ``_id`` and ``_rev`` and its
attachments inline (base 64 ``data``). Deleted documents, conflicting revisions and
``_local`` documents are not exported. An import writes each document with its own ``_rev``
(``new_edits=false``, as replication does), so the restored database has the same revisions
and a second import of the same file changes nothing.

Both are resumable: ``export --resume`` continues after the last complete line of FILE (a
line cut by an interruption is dropped and written again), and ``import`` asks the server
which revisions it lacks (``_revs_diff``) before each batch, so running it again after an
interruption sends only what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from couchmapper.backends.base import Backend
from couchmapper.cli.common import all_docs_pages, open_database, progress, reported, shown

__all__ = ["export", "import_"]


def _last_exported(path: Path) -> str | None:
    """The id on the last complete line of an export; a cut last line is removed."""
    last: str | None = None
    complete = 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            complete += len(line)
            if line.strip():
                last = json.loads(line)["_id"]
    with path.open("r+b") as handle:
        handle.truncate(complete)
    return last


def _with_attachments(backend: Backend, doc: dict[str, Any]) -> dict[str, Any]:
    """The document with its attachments' data inline (one more request when it has any)."""
    if not doc.get("_attachments"):
        return doc
    return backend.get(doc["_id"], rev=doc["_rev"], attachments=True)


@click.command("export")
@click.argument("url")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="Continue an interrupted export into FILE.")
@click.option("--page", default=500, show_default=True, help="Documents read per request.")
def export(url: str, file: Path, resume: bool, page: int) -> None:
    """Write every document of the database URL to FILE as JSON Lines, attachments included."""
    backend = open_database(url)
    after = _last_exported(file) if resume and file.exists() else None
    written = attachments = 0
    with reported(url):
        total = int(backend.info().get("doc_count") or 0)
        mode = "a" if after is not None else "w"
        with file.open(mode, encoding="utf-8") as out, progress(total, "exporting") as bar:
            task = bar.add_task("export", total=total)
            for docs in all_docs_pages(backend, after=after, page=page):
                for doc in docs:
                    full = _with_attachments(backend, doc)
                    attachments += len(full.get("_attachments") or {})
                    out.write(json.dumps(full, ensure_ascii=False, separators=(",", ":")) + "\n")
                out.flush()  # a page at a time: --resume continues after the last one
                written += len(docs)
                bar.advance(task, len(docs))
    how = f"resumed after {after!r}, " if after is not None else ""
    click.echo(
        f"{shown(url)}: {how}{written} document(s), {attachments} attachment(s) -> {file}",
        err=True,
    )


def _batches(handle: IO[str], size: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Documents of a JSON Lines file, ``size`` at a time, with the bytes each batch took."""
    batch: list[dict[str, Any]] = []
    used = 0
    for number, line in enumerate(handle, 1):
        used += len(line.encode("utf-8"))
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"line {number}: not JSON ({exc.msg})"
            raise click.ClickException(msg) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("_id"), str):
            msg = f"line {number}: not a document with an _id"
            raise click.ClickException(msg)
        batch.append(doc)
        if len(batch) >= size:
            yield batch, used
            batch, used = [], 0
    if batch or used:
        yield batch, used


def _write(backend: Backend, docs: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Write the documents the database lacks; (how many were written, error lines)."""
    with_rev = [d for d in docs if isinstance(d.get("_rev"), str)]
    fresh = [d for d in docs if not isinstance(d.get("_rev"), str)]
    wanted = {d["_id"]: [d["_rev"]] for d in with_rev}
    missing = backend.revs_diff(wanted) if wanted else {}
    send = [d for d in with_rev if d["_id"] in missing]
    errors: list[str] = []
    written = 0
    if send:
        # With new_edits=false CouchDB answers only the refused documents.
        for row in backend.bulk_docs(send, new_edits=False):
            if "error" in row:
                errors.append(f"{row.get('id')}\t{row['error']}\t{row.get('reason', '')}")
        written += len(send) - len(errors)
    if fresh:
        for row in backend.bulk_docs(fresh):
            if row.get("error") == "conflict":
                continue  # written by an earlier run of this import
            if "error" in row:
                errors.append(f"{row.get('id')}\t{row['error']}\t{row.get('reason', '')}")
            else:
                written += 1
    return written, errors


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("url")
@click.option("--batch", default=500, show_default=True, help="Documents per _bulk_docs.")
def import_(file: Path, url: str, batch: int) -> None:
    """Restore the JSON Lines FILE (from ``export``) into the database URL.

    The database is created when missing. Documents it already has at the same revision are
    skipped, so an interrupted import is resumed by running it again. Exits with status 1
    when any document was refused.
    """
    backend = open_database(url, create=True)
    written = read = 0
    failures: list[str] = []
    size = file.stat().st_size
    with (
        reported(url),
        file.open(encoding="utf-8") as handle,
        progress(size, "importing") as bar,
    ):
        task = bar.add_task("import", total=size)
        for docs, used in _batches(handle, batch):
            read += len(docs)
            done, errors = _write(backend, docs)
            written += done
            failures += errors
            bar.advance(task, used)
    for line in failures:
        click.echo(line)
    click.echo(
        f"{shown(url)}: {read} document(s) read, {written} written, "
        f"{read - written - len(failures)} already there, {len(failures)} refused",
        err=True,
    )
    if failures:
        raise SystemExit(1)
