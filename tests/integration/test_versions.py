"""Schema versions: ``Meta.version``, upgrade steps on raw JSON, newer documents, hooks."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.model.versions import UpgradeStep


def no_at_in_first(instance: Any, field: Any, value: str) -> None:
    """Refuse a first name with an ``@``."""
    if "@" in value:
        msg = "a first name has no @"
        raise ValueError(msg)


class Person(cm.Document, type_name="ver-person"):
    """Version 3: ``name`` split into ``first``/``last`` (2), ``mail`` renamed ``email`` (3)."""

    first: str = cm.field(default="", validator=no_at_in_first)
    last: str = ""
    email: str | None = None

    class Meta:
        version = 3

    @cm.upgrade(1)
    def split_name(doc: dict[str, Any]) -> None:
        """1 -> 2: split the full name."""
        first, _, last = doc.pop("name").partition(" ")
        doc["first"], doc["last"] = first, last

    @cm.upgrade(2)
    def rename_mail(doc: dict[str, Any]) -> dict[str, Any]:
        """2 -> 3: ``mail`` becomes ``email`` (returns a new dict)."""
        return {**{k: v for k, v in doc.items() if k != "mail"}, "email": doc.get("mail")}


class OldPerson(cm.Document, type_name="ver-old-person"):
    """Version 2 code that refuses version-3 documents (the default)."""

    first: str = ""

    class Meta:
        version = 2


class ReadOnlyPerson(cm.Document, type_name="ver-ro-person"):
    """Version 2 code that reads version-3 documents read-only."""

    first: str = ""

    class Meta:
        version = 2
        newer = "read_only"


class Tagged(cm.Document, type_name="ver-tagged"):
    """A class keeping its version under another key."""

    n: int = 0

    class Meta:
        version = 2
        version_field = "v"

    @cm.upgrade(1)
    def double(doc: dict[str, Any]) -> None:
        """1 -> 2: n doubles."""
        doc["n"] = doc.get("n", 0) * 2


V1 = {"_id": "ada", "type": "ver-person", "name": "Ada Lovelace", "mail": "ada@x", "club": 7}


def test_older_document_is_upgraded_step_by_step_and_written(backend: Backend) -> None:
    """A v1 document loads as v3 (both steps), is dirty, and the flush writes v3 JSON."""
    backend.put(dict(V1))
    with cm.Session(backend) as s:
        ada = s.get(Person, "ada")
        assert ada is not None
        assert (ada.first, ada.last, ada.email) == ("Ada", "Lovelace", "ada@x")
        assert s.has_pending()
        paths = sorted(".".join(map(str, c.path)) for c in cm.changes(ada))
        assert paths == ["email", "first", "last", "mail", "name", "schema_version"]
    stored = backend.get("ada")
    assert stored["schema_version"] == 3
    assert stored["club"] == 7  # an unknown field survives the upgrade
    assert "name" not in stored
    assert "mail" not in stored
    assert stored["_rev"].startswith("2-")


def test_current_document_is_not_dirty(backend: Backend) -> None:
    """A document at the class's version loads clean; nothing is written."""
    backend.put({"_id": "cur", "type": "ver-person", "first": "A", "schema_version": 3})
    with cm.Session(backend) as s:
        assert s.get(Person, "cur") is not None
        assert not s.has_pending()
    assert backend.get("cur")["_rev"].startswith("1-")


def test_new_documents_carry_the_version(backend: Backend) -> None:
    """A document created by the code is stored with the class's version."""
    with cm.Session(backend) as s:
        s.add(Person(id="new", first="B"))
        s.add(Tagged(id="t", n=1))
    assert backend.get("new")["schema_version"] == 3
    assert backend.get("t")["v"] == 2


def test_read_only_session_upgrades_in_memory_without_writing(backend: Backend) -> None:
    """write_upgrades=False: the object is upgraded but not dirty; the stored one stays v1."""
    backend.put(dict(V1))
    with cm.Session(backend, write_upgrades=False) as s:
        ada = s.get(Person, "ada")
        assert ada is not None
        assert ada.first == "Ada"
        assert not s.has_pending()
    assert backend.get("ada")["name"] == "Ada Lovelace"


def test_hooks_see_the_upgrade_as_a_change(backend: Backend) -> None:
    """document_changed fires at the flush with the upgrade's changes."""
    backend.put(dict(V1))
    seen: list[list[str]] = []

    def receiver(sender: type, **kwargs: Any) -> None:
        """Record the changed paths."""
        seen.append(sorted(".".join(map(str, c.path)) for c in kwargs["changes"]))

    with signals.document_changed.connected_to(receiver, sender=Person), cm.Session(backend) as s:
        s.get(Person, "ada")
    assert seen == [["email", "first", "last", "mail", "name", "schema_version"]]


def test_newer_document_raises_naming_both_versions(backend: Backend) -> None:
    """Version-2 code refuses a version-3 document by default; the error names both."""
    backend.put({"_id": "v3", "type": "ver-old-person", "first": "C", "schema_version": 3})
    with cm.Session(backend) as s, pytest.raises(cm.SchemaVersionError) as caught:
        s.get(OldPerson, "v3")
    error = caught.value
    assert (error.doc_id, error.stored, error.current) == ("v3", 3, 2)
    assert "schema version 3, newer than OldPerson (version 2)" in str(error)
    assert isinstance(error, cm.ValidationError)


def test_newer_document_loads_read_only_and_is_never_written(backend: Backend) -> None:
    """newer="read_only": it loads; a change or a delete is refused and stays pending."""
    backend.put({"_id": "v3", "type": "ver-ro-person", "first": "C", "schema_version": 3})
    s = cm.Session(backend)
    doc = s.get(ReadOnlyPerson, "v3")
    assert doc is not None
    assert doc.first == "C"
    doc.first = "D"
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    (failure,) = caught.value.failures
    assert failure.error == "forbidden"
    assert "schema version 3, newer than ReadOnlyPerson (version 2)" in failure.reason
    assert s.has_pending()
    s.rollback()
    s.delete(doc)
    with pytest.raises(cm.FlushError, match="read-only"):
        s.flush()
    s.rollback()
    s.close()
    assert backend.get("v3")["first"] == "C"


def test_upgraded_document_is_validated(backend: Backend) -> None:
    """The class's validators run on the upgraded JSON: a bad result fails the load."""
    backend.put({"_id": "bad", "type": "ver-person", "name": "x@y z", "schema_version": 1})
    with cm.Session(backend) as s, pytest.raises(cm.ValidationError) as caught:
        s.get(Person, "bad")
    assert [e.path for e in caught.value.errors] == ["first"]


def test_failing_step_names_the_step_and_document(backend: Backend) -> None:
    """A step raising (here: no ``name`` to split) gives a ValidationError naming it."""
    backend.put({"_id": "noname", "type": "ver-person"})
    with cm.Session(backend) as s, pytest.raises(cm.ValidationError) as caught:
        s.get(Person, "noname")
    assert caught.value.doc_id == "noname"
    assert "split_name" in str(caught.value)
    assert "KeyError" in str(caught.value)


def test_configured_version_field_and_missing_version_means_one(backend: Backend) -> None:
    """A document without the version field is version 1; Meta.version_field names the key."""
    backend.put({"_id": "t", "type": "ver-tagged", "n": 4})
    with cm.Session(backend) as s:
        t = s.get(Tagged, "t")
        assert t is not None
        assert t.n == 8
    assert backend.get("t")["v"] == 2


def test_upgrade_rebases_over_a_concurrent_edit(backend: Backend) -> None:
    """An upgrade flushed with conflict="rebase" keeps another writer's unrelated change."""
    backend.put(dict(V1))
    s = cm.Session(backend, conflict="rebase")
    assert s.get(Person, "ada") is not None
    current = backend.get("ada")
    backend.put({**current, "club": 8})
    s.flush()
    s.close()
    stored = backend.get("ada")
    assert (stored["club"], stored["first"], stored["schema_version"]) == (8, "Ada", 3)


def test_detached_load_upgrades_too() -> None:
    """cm.load() on raw JSON upgrades it (no session: nothing marked)."""
    person = cm.load(Person, dict(V1))
    assert (person.first, person.email) == ("Ada", "ada@x")
    assert cm.dump(person)["schema_version"] == 3


def test_schema_version_error_pickles() -> None:
    """A SchemaVersionError survives pickling with its attributes."""
    error = cm.SchemaVersionError("d", "Person", 4, 3, field="v")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.doc_id, copy.stored, copy.current, copy.errors[0].path) == ("d", 4, 3, "v")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("schema_version: int = 0\n    class Meta:\n        version = 2", "schema_version"),
        ("n: int = 0\n    class Meta:\n        version = 0", "int >= 1"),
        ("n: int = 0\n    class Meta:\n        version = 2\n        newer = 'ignore'", "newer"),
        ("n: int = 0\n    class Meta:\n        version = 2\n        version_field = '_v'", "_"),
    ],
)
def test_bad_version_declarations_are_refused(body: str, message: str) -> None:
    """A class statement with a bad version declaration raises TypeError when defined."""
    source = f"class Bad(cm.Document, type_name='ver-bad'):\n    {body}\n"
    with pytest.raises(TypeError, match=message):
        exec(source, {"cm": cm})


def test_steps_must_be_contiguous_and_below_the_version() -> None:
    """A gap between steps, a step past the version and steps without a version are refused."""
    step = UpgradeStep(1, lambda doc: None)
    late = UpgradeStep(3, lambda doc: None)
    with pytest.raises(TypeError, match="no upgrade step from version 2 to 3"):
        type(
            "Gap", (cm.Document,), {"Meta": type("Meta", (), {"version": 4}), "a": step, "b": late}
        )
    with pytest.raises(TypeError, match="upgrade step from version 3"):
        type("Late", (cm.Document,), {"Meta": type("Meta", (), {"version": 3}), "b": late})
    with pytest.raises(TypeError, match="no `class Meta: version"):
        type("NoVersion", (cm.Document,), {"a": step})
    with pytest.raises(TypeError, match="int >= 1"):
        cm.upgrade(0)


def test_upgrade_changes_patch_the_stored_json_into_what_the_flush_sends() -> None:
    """The upgrade's change log, as a JSON Patch on the stored JSON, gives the written JSON."""
    db = cm.connect()
    stored = {**V1, "nested": {"keep": 1, "drop": 2}}
    db.put(stored)
    with cm.Session(db) as s:
        ada = s.get(Person, "ada")
        assert ada is not None
        loaded = db.get("ada")
        patch = cm.changes(ada).to_json_patch()
        assert cm.apply_json_patch(loaded, patch) == {**cm.dump(ada), "_rev": loaded["_rev"]}
