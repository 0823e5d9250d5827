"""Bulk schema migration: upgrade every stored document of versioned classes, in batches.

:func:`migrate` walks ``_all_docs`` in id order, ``batch`` documents per request. Each batch
gets a fresh :class:`~couchmapper.orm.session.Session` (``conflict="rebase"``): the documents of
a versioned class (``Meta.version``) that are older than it load through the session, which
runs the upgrade steps, validates and marks them dirty; one flush writes them (``_bulk_docs``
chunks; a concurrent edit of another field is rebased, not lost). Hooks fire as for any change.

After each batch a checkpoint (the last id done and the counts so far) is written to a
``_local`` document, which replication never copies and queries never see. An interrupted
run started again continues after that id; a run that finishes deletes its checkpoint, so
the next run starts over, finds every document current and changes nothing (idempotent).

Memory stays flat: one batch of JSON and objects at a time, and at most ``max_failures``
failure reasons kept (every failure is counted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, Final

import attrs

from couchmapper._types import JSONDict
from couchmapper.backends.base import Backend
from couchmapper.exceptions import ConflictError, DocumentNotFound, FlushError, ValidationError
from couchmapper.model.registry import ModelInfo, model_info
from couchmapper.model.versions import Versioning, stored_version
from couchmapper.orm.database import as_backend
from couchmapper.orm.session import Session

__all__ = ["CHECKPOINT_PREFIX", "MigrationReport", "migrate", "versioned_classes"]

CHECKPOINT_PREFIX: Final = "_local/couchmapper-migrate-"
"""The id of a run's checkpoint: this prefix and a digest of the classes and versions."""

Progress = Callable[[int, int], None]


@attrs.define
class MigrationReport:
    """What a migration did (counts include those of the interrupted runs it resumed).

    Attributes:
        upgraded: documents written at the current version (in a dry run: that would be).
        current: documents already at their class's version.
        failed: documents that could not be upgraded (newer than the code, a failing step,
            invalid after the upgrade, a write refused).
        skipped: other documents (design documents, other classes, unversioned classes).
        failures: ``(doc_id, reason)`` of the first ``max_failures`` failures.
        resumed_after: the id a checkpoint let this run start after (None: from the start).
        dry_run: nothing was written.
    """

    upgraded: int = 0
    current: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = attrs.field(factory=list)
    resumed_after: str | None = None
    dry_run: bool = False

    @property
    def seen(self) -> int:
        """Every document the run (and the runs it resumed) looked at."""
        return self.upgraded + self.current + self.failed + self.skipped

    def summary(self) -> str:
        """One line per count, then the failures with their reasons."""
        verb = "would upgrade" if self.dry_run else "upgraded"
        lines = [
            f"{verb}: {self.upgraded}",
            f"already current: {self.current}",
            f"failed: {self.failed}",
            f"skipped (other documents): {self.skipped}",
        ]
        if self.resumed_after is not None:
            lines.append(f"resumed after {self.resumed_after!r}")
        lines += [f"  {doc_id}: {reason}" for doc_id, reason in self.failures]
        if self.failed > len(self.failures):
            lines.append(f"  ... and {self.failed - len(self.failures)} more")
        return "\n".join(lines)


def versioned_classes(candidates: Iterable[Any]) -> list[type]:
    """The document classes with ``Meta.version`` among ``candidates`` (a module's values)."""
    found = []
    for value in candidates:
        info = model_info(value) if isinstance(value, type) else None
        if info is not None and info.is_document and info.versions is not None:
            found.append(value)
    return found


def migrate(
    database: Backend | str | Any,
    classes: Iterable[type],
    *,
    batch: int = 1000,
    dry_run: bool = False,
    progress: Progress | None = None,
    max_failures: int = 1000,
) -> MigrationReport:
    """Upgrade every stored document of ``classes`` (and their subclasses) to its version.

    Args:
        database: a backend, a URL (``http://...``, ``memory://name``) or a couchdb Database.
        classes: versioned document classes (``Meta.version``); others are refused.
        batch: documents per ``_all_docs`` request and per flush.
        dry_run: load, upgrade and validate, count, but write nothing (no checkpoint either).
        progress: called after each batch with (documents seen, documents in the database).
        max_failures: how many failure reasons the report keeps (all are counted).

    Returns:
        The counts, the failures, and where a checkpoint let the run resume.

    Raises:
        TypeError: a class is not a versioned document class.
        ValueError: ``batch`` is below 1.
    """
    if batch < 1:
        msg = f"batch must be at least 1, not {batch}"
        raise ValueError(msg)
    backend = as_backend(database)
    targets = _targets(classes)
    checkpoint_id = CHECKPOINT_PREFIX + _digest(targets)
    report, checkpoint = _resume(backend, checkpoint_id, dry_run)
    total = int(backend.info().get("doc_count", 0))
    last = report.resumed_after
    while True:
        options: dict[str, Any] = {"include_docs": True, "limit": batch + 1}
        if last is not None:
            options["startkey"] = last
        rows = [r for r in backend.all_docs(**options).get("rows", ()) if r["id"] != last]
        rows = rows[:batch]
        if not rows:
            break
        _migrate_batch(backend, targets, [r.get("doc") for r in rows], report, dry_run)
        del report.failures[max_failures:]
        last = rows[-1]["id"]
        if not dry_run:
            checkpoint = _save_checkpoint(backend, checkpoint_id, checkpoint, report, last)
        if progress is not None:
            progress(report.seen, max(total, report.seen))
    if checkpoint is not None and not dry_run:
        backend.delete(checkpoint_id, checkpoint["_rev"])
    return report


def _targets(classes: Iterable[type]) -> dict[tuple[str, str], tuple[type, Versioning]]:
    """(discriminator, type name) -> (class, versioning) for the classes and subclasses."""
    targets: dict[tuple[str, str], tuple[type, Versioning]] = {}
    for cls in classes:
        info = model_info(cls)
        if info is None or not info.is_document or info.versions is None:
            msg = f"{cls!r} is not a document class with `class Meta: version = N`"
            raise TypeError(msg)
        for found in (cls, *info.subclasses.values()):
            sub: ModelInfo | None = model_info(found)
            if sub is None or sub.versions is None or sub.type_name is None:
                continue
            targets[(sub.discriminator or "", sub.type_name)] = (found, sub.versions)
    return targets


def _digest(targets: dict[tuple[str, str], tuple[type, Versioning]]) -> str:
    """A short name for this set of classes and versions (a checkpoint is theirs only)."""
    text = ";".join(
        f"{key[0]}={key[1]}@{versioning.version}"
        for key, (_, versioning) in sorted(targets.items())
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resume(
    backend: Backend, checkpoint_id: str, dry_run: bool
) -> tuple[MigrationReport, JSONDict | None]:
    """The report to continue (from the checkpoint of an interrupted run, if any).

    A dry run starts from the beginning: it reports on the whole database as it is.
    """
    if dry_run:
        return MigrationReport(dry_run=True), None
    try:
        checkpoint = backend.get(checkpoint_id)
    except DocumentNotFound:
        return MigrationReport(dry_run=dry_run), None
    counts = checkpoint.get("counts", {})
    report = MigrationReport(
        upgraded=counts.get("upgraded", 0),
        current=counts.get("current", 0),
        failed=counts.get("failed", 0),
        skipped=counts.get("skipped", 0),
        failures=[(str(i), str(r)) for i, r in checkpoint.get("failures", [])],
        resumed_after=checkpoint.get("last_id"),
        dry_run=dry_run,
    )
    return report, checkpoint


def _save_checkpoint(
    backend: Backend,
    checkpoint_id: str,
    previous: JSONDict | None,
    report: MigrationReport,
    last: str,
) -> JSONDict:
    """Write the checkpoint after a batch; returns it with its new ``_rev``."""
    body: JSONDict = {
        "_id": checkpoint_id,
        "last_id": last,
        "counts": {
            "upgraded": report.upgraded,
            "current": report.current,
            "failed": report.failed,
            "skipped": report.skipped,
        },
        "failures": [list(f) for f in report.failures],
    }
    if previous is not None:
        body["_rev"] = previous["_rev"]
    answer = backend.put(body)
    body["_rev"] = answer["rev"]
    return body


def _migrate_batch(
    backend: Backend,
    targets: dict[tuple[str, str], tuple[type, Versioning]],
    docs: list[JSONDict | None],
    report: MigrationReport,
    dry_run: bool,
) -> None:
    """Upgrade the older documents of one batch in a session of their own, and count."""
    session = Session(backend, conflict="rebase")
    try:
        loaded = 0
        for doc in docs:
            target = _target_of(targets, doc)
            if doc is None or target is None:
                report.skipped += 1
                continue
            cls, versioning = target
            try:
                version = stored_version(versioning, doc, cls.__name__)
                if version == versioning.version:
                    report.current += 1
                    continue
                if version > versioning.version:
                    reason = (
                        f"schema version {version}, newer than {cls.__name__} "
                        f"(version {versioning.version})"
                    )
                    _fail(report, doc["_id"], reason)
                    continue
                session.load_rows([doc], cls)
                loaded += 1
            except ValidationError as exc:
                _fail(report, doc["_id"], str(exc).replace("\n", " "))
        if dry_run or not loaded:
            report.upgraded += loaded
            return
        try:
            session.flush()
        except (FlushError, ConflictError) as exc:
            # A true overlap with a concurrent edit raises ConflictError, caused by the FlushError.
            flush_error = exc if isinstance(exc, FlushError) else exc.__cause__
            failures = flush_error.failures if isinstance(flush_error, FlushError) else ()
            for failure in failures:
                _fail(report, failure.doc_id, f"{failure.error}: {failure.reason}")
            loaded -= len(failures)
        report.upgraded += loaded
    finally:
        session.close()


def _target_of(
    targets: dict[tuple[str, str], tuple[type, Versioning]], doc: JSONDict | None
) -> tuple[type, Versioning] | None:
    """The versioned class a stored document belongs to (None: not one of ours)."""
    if doc is None or doc.get("_id", "").startswith("_design/"):
        return None
    for discriminator in {key[0] for key in targets}:
        name = doc.get(discriminator)
        if isinstance(name, str) and (discriminator, name) in targets:
            return targets[(discriminator, name)]
    return None


def _fail(report: MigrationReport, doc_id: str, reason: str) -> None:
    report.failed += 1
    report.failures.append((doc_id, reason))
