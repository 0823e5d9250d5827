"""``couchmapper.migrate.migrate``: batches, checkpoint and resume, idempotence, failures."""

from __future__ import annotations

import weakref
from typing import Any

import pytest
from migrate_models import Member, Note, member_v1

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.migrate import CHECKPOINT_PREFIX, MigrationReport, migrate, versioned_classes

OLD = 25


def seed(backend: Backend) -> None:
    """25 v1 members, 5 current ones, 2 notes, a design doc, one unupgradable, one too new."""
    docs: list[dict[str, Any]] = [member_v1(n) for n in range(OLD)]
    docs += [
        {"_id": f"c{n}", "type": "mig-member", "first": "C", "schema_version": 3} for n in range(5)
    ]
    docs += [{"_id": f"note{n}", "type": "mig-note", "text": "t"} for n in range(2)]
    docs += [{"_id": "_design/x", "views": {}}]
    docs += [{"_id": "m-noname", "type": "mig-member"}]
    docs += [{"_id": "m-future", "type": "mig-member", "schema_version": 4}]
    results = backend.bulk_docs(docs)
    assert all("error" not in r for r in results), results


def checkpoints(backend: Backend) -> list[str]:
    """The ids of migration checkpoints in the database (by trying the one for Member)."""
    found = []
    for row in backend.all_docs(startkey="_local/", endkey="_local/\ufff0").get("rows", ()):
        found.append(row["id"])
    return found


def test_migrate_upgrades_old_documents_and_counts_the_rest(backend: Backend) -> None:
    """Every v1 member is written as v3; current, failed and other documents are counted."""
    seed(backend)
    report = migrate(backend, [Member], batch=7)
    assert (report.upgraded, report.current, report.failed, report.skipped) == (OLD, 5, 2, 3)
    reasons = dict(report.failures)
    assert "split_name" in reasons["m-noname"]
    assert "schema version 4, newer than Member (version 3)" in reasons["m-future"]
    stored = backend.get("m0007")
    assert (stored["first"], stored["last"], stored["email"]) == ("First7", "Last7", "7@x")
    assert stored["schema_version"] == 3
    assert "name" not in stored
    assert backend.get("note0") == {**backend.get("note0"), "text": "t"}
    with pytest.raises(cm.DocumentNotFound):
        backend.get(CHECKPOINT_PREFIX + "x")
    assert "upgraded: 25" in report.summary()
    assert "m-noname" in report.summary()


def test_migrate_twice_changes_nothing_the_second_time(backend: Backend) -> None:
    """A second run finds every upgradable document current and writes nothing."""
    seed(backend)
    migrate(backend, [Member], batch=10)
    revs = {doc_id: backend.get(doc_id)["_rev"] for doc_id in ("m0000", "m0024", "c0")}
    again = migrate(backend, [Member], batch=10)
    assert (again.upgraded, again.current, again.failed) == (0, OLD + 5, 2)
    assert again.resumed_after is None
    assert {doc_id: backend.get(doc_id)["_rev"] for doc_id in revs} == revs


class Interrupted(Exception):
    """Raised by a progress callback to stop a migration mid-run."""


def test_interrupted_migration_resumes_after_its_checkpoint(backend: Backend) -> None:
    """A run stopped after three batches resumes after the checkpoint and finishes the rest.

    In id order: ``_design/x``, ``c0``-``c4``, ``m-future``, ``m-noname``, ``m0000``...: the
    first three batches of 5 end at ``m0006``.
    """
    seed(backend)
    calls: list[int] = []

    def stop_after_three(done: int, total: int) -> None:
        """Let three batches through, then stop the run."""
        calls.append(done)
        if len(calls) == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        migrate(backend, [Member], batch=5, progress=stop_after_three)
    assert calls == [5, 10, 15]
    assert backend.get("m0006")["schema_version"] == 3  # batches 1 to 3 were written
    assert "schema_version" not in backend.get("m0007")  # batch 4 was never read
    first_revs = {f"m{n:04d}": backend.get(f"m{n:04d}")["_rev"] for n in range(7)}
    resumed = migrate(backend, [Member], batch=5)
    assert resumed.resumed_after == "m0006"
    assert (resumed.upgraded, resumed.current, resumed.failed, resumed.skipped) == (OLD, 5, 2, 3)
    assert {doc_id: backend.get(doc_id)["_rev"] for doc_id in first_revs} == first_revs
    assert all(backend.get(f"m{n:04d}")["schema_version"] == 3 for n in range(OLD))
    finished = migrate(backend, [Member], batch=5)
    assert finished.resumed_after is None  # the finished run deleted its checkpoint
    assert finished.upgraded == 0


def test_dry_run_writes_nothing(backend: Backend) -> None:
    """A dry run counts what it would upgrade and leaves every document (and no checkpoint)."""
    seed(backend)
    report = migrate(backend, [Member], batch=6, dry_run=True)
    assert (report.upgraded, report.current, report.failed) == (OLD, 5, 2)
    assert report.dry_run
    assert "would upgrade: 25" in report.summary()
    assert "schema_version" not in backend.get("m0003")


def test_migration_holds_one_batch_of_objects_at_a_time(backend: Backend) -> None:
    """Objects of finished batches are released: memory does not grow with the database."""
    seed(backend)
    loaded: list[weakref.ref[Any]] = []
    alive: list[int] = []
    during: list[int] = []

    def remember(sender: type, **kwargs: Any) -> None:
        """Keep a weak reference to each loaded document; count those alive with it."""
        loaded.append(weakref.ref(kwargs["document"]))
        during.append(sum(1 for ref in loaded if ref() is not None))

    def count(done: int, total: int) -> None:
        """Count the loaded documents still alive after a batch."""
        alive.append(sum(1 for ref in loaded if ref() is not None))

    with signals.document_loaded.connected_to(remember, sender=Member):
        migrate(backend, [Member], batch=4, progress=count)
    assert len(loaded) == OLD  # m-noname's upgrade failed before it was loaded
    assert max(during) == 4  # a batch's objects live together...
    assert max(alive) == 0  # ...and are gone once it is written


def test_hooks_see_each_upgrade(backend: Backend) -> None:
    """document_changed fires once per upgraded document, with the upgrade's changes."""
    seed(backend)
    changed: list[str] = []

    def receiver(sender: type, **kwargs: Any) -> None:
        """Record each changed document's id."""
        changed.append(kwargs["document"].id)
        assert any(c.path == ("first",) for c in kwargs["changes"])

    with signals.document_changed.connected_to(receiver, sender=Member):
        migrate(backend, [Member], batch=8)
    assert sorted(changed) == [f"m{n:04d}" for n in range(OLD)]


def test_migrate_refuses_unversioned_classes_and_bad_batches() -> None:
    """Only versioned document classes can be migrated; batch must be positive."""
    db = cm.connect()
    with pytest.raises(TypeError, match="Meta: version"):
        migrate(db, [Note])
    with pytest.raises(ValueError, match="batch"):
        migrate(db, [Member], batch=0)
    assert versioned_classes([Member, Note, 3, "x"]) == [Member]


def test_report_summary_lists_failures_beyond_the_kept_ones() -> None:
    """The summary says how many failures it does not list."""
    report = MigrationReport(failed=3, failures=[("a", "bad")])
    assert "... and 2 more" in report.summary()


def test_a_write_the_server_refuses_is_a_failure_with_its_reason(backend: Backend) -> None:
    """A validate_doc_update refusal fails that document only; the others are upgraded."""
    seed(backend)
    backend.put(
        {
            "_id": "_design/guard",
            "validate_doc_update": (
                "function (doc) { if (doc.first === 'First3') { throw({forbidden: 'no 3'}); } }"
            ),
        }
    )
    report = migrate(backend, [Member], batch=10)
    assert report.upgraded == OLD - 1
    assert dict(report.failures)["m0003"] == "forbidden: no 3"
    assert "schema_version" not in backend.get("m0003")
    assert backend.get("m0004")["schema_version"] == 3


def test_a_concurrent_edit_is_rebased_not_lost(backend: Backend) -> None:
    """Another writer's edit between the read and the write of a batch survives the upgrade."""
    seed(backend)
    edited: list[str] = []

    def edit_elsewhere(sender: Any, **kwargs: Any) -> None:
        """Before the first flush, another writer changes an unrelated field of m0001."""
        if not edited:
            current = backend.get("m0001")
            backend.put({**current, "club": "chess"})
            edited.append(current["_id"])

    with signals.before_flush.connected_to(edit_elsewhere):
        report = migrate(backend, [Member], batch=50)
    assert edited == ["m0001"]
    assert (report.upgraded, report.failed) == (OLD, 2)
    stored = backend.get("m0001")
    assert (stored["club"], stored["first"], stored["schema_version"]) == ("chess", "First1", 3)


def test_dry_run_ignores_the_checkpoint_of_an_interrupted_run() -> None:
    """A dry run after an interrupted run reports on the whole database, from the start."""
    db = cm.connect()
    seed(db)

    def stop(done: int, total: int) -> None:
        """Stop after the first batch."""
        raise Interrupted

    with pytest.raises(Interrupted):
        migrate(db, [Member], batch=20, progress=stop)
    dry = migrate(db, [Member], batch=20, dry_run=True)
    assert dry.resumed_after is None
    assert (dry.seen, dry.failed, dry.skipped) == (OLD + 5 + 2 + 3, 2, 3)
    assert dry.upgraded + dry.current == OLD + 5  # the first batch is already current
    resumed = migrate(db, [Member], batch=20)
    assert resumed.resumed_after is not None
    assert resumed.upgraded == OLD
