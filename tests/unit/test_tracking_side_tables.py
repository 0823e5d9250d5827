"""The tracker's side tables: nested embedded sets and list appends kept out of the ordered log.

``doc.address.city = x`` and ``doc.tags.append(x)`` take fast paths while their top-level
field has nothing in the ordered log; these tests pin that the changes they report are the
same as the ordered log would give: full paths, set back = clean, folding into later edits.
"""

from __future__ import annotations

from typing import Any

import pytest
from models import Address, Geo, Person

import couchmapper as cm
from couchmapper import signals
from couchmapper.model.base import state_of
from couchmapper.orm.state import InstanceState


def _person(**extra: Any) -> Person:
    raw = {
        "_id": "p1",
        "_rev": "1-a",
        "type": "person",
        "name": "Ann",
        "age": 30,
        "tags": ["a", "b"],
        "address": {"street": "Main 1", "city": "Oslo", "geo": None},
        **extra,
    }
    return cm.load(Person, raw, status=cm.Lifecycle.PERSISTENT)


def _state(doc: Person) -> InstanceState:
    state = state_of(doc)
    assert state is not None
    return state


def _patched_is_dumped(doc: Person) -> bool:
    loaded = _state(doc).loaded
    assert loaded is not None
    base = cm.dump(cm.load(Person, loaded))  # with the defaults the class writes
    patched = cm.apply_json_patch(base, cm.changes(doc).to_json_patch())
    return bool(patched == cm.dump(doc))


def test_nested_set_reports_its_full_path_with_the_first_old_value() -> None:
    """Two sets of doc.address.city are one replace at address.city from the loaded value."""
    doc = _person()
    assert doc.address is not None
    doc.address.city = "Rome"
    doc.address.city = "Paris"
    assert cm.changes(doc) == [cm.Change("replace", ("address", "city"), "Paris", "Oslo")]
    assert cm.changes(doc.address) == cm.changes(doc)
    assert _patched_is_dumped(doc)


def test_nested_set_back_to_the_loaded_value_is_clean() -> None:
    """Setting address.city away and back leaves no change and the state clean."""
    doc = _person()
    assert doc.address is not None
    doc.address.city = "Rome"
    doc.address.city = "Oslo"
    assert cm.changes(doc) == []
    assert not _state(doc).has_changes


def test_replacing_the_embedded_object_folds_its_nested_sets() -> None:
    """A nested set, then the whole address replaced: one replace whose old is as loaded."""
    doc = _person()
    old_address = doc.address
    assert old_address is not None
    old_address.city = "Rome"
    doc.address = Address(street="Side 2", city="Bergen")
    old_json = {"street": "Main 1", "city": "Oslo", "geo": None}
    new_json = {"street": "Side 2", "city": "Bergen", "geo": None}
    assert cm.changes(doc) == [cm.Change("replace", ("address",), new_json, old_json)]
    old_address.city = "Lima"  # detached now: not recorded
    assert cm.changes(doc) == [cm.Change("replace", ("address",), new_json, old_json)]
    assert _patched_is_dumped(doc)


def test_a_slow_edit_under_the_same_field_keeps_the_nested_set_first() -> None:
    """address.city set fast, then address.geo (ordered log): the city set moves there first."""
    doc = _person()
    assert doc.address is not None
    doc.address.city = "Rome"
    doc.address.geo = Geo(lat=1.0, lon=2.0)
    assert cm.changes(doc) == [
        cm.Change("replace", ("address", "city"), "Rome", "Oslo"),
        cm.Change("replace", ("address", "geo"), {"lat": 1.0, "lon": 2.0}, None),
    ]
    doc.address.city = "Paris"  # the field is in the ordered log now: merged there
    assert cm.changes(doc) == [
        cm.Change("replace", ("address", "geo"), {"lat": 1.0, "lon": 2.0}, None),
        cm.Change("replace", ("address", "city"), "Paris", "Oslo"),
    ]
    assert _patched_is_dumped(doc)


def test_appends_are_adds_at_their_indexes() -> None:
    """Appends report one add per item, at the indexes they took."""
    doc = _person()
    doc.tags.append("c")
    doc.tags.extend(["d", "e"])
    assert cm.changes(doc) == [
        cm.Change("add", ("tags", 2), "c"),
        cm.Change("add", ("tags", 3), "d"),
        cm.Change("add", ("tags", 4), "e"),
    ]
    assert _patched_is_dumped(doc)


def test_append_then_pop_is_clean() -> None:
    """An appended item popped again leaves nothing to write."""
    doc = _person()
    doc.tags.append("c")
    assert doc.tags.pop() == "c"
    assert cm.changes(doc) == []
    assert not _state(doc).has_changes


def test_appends_then_a_reordering_or_a_new_list_fold_into_one_replace() -> None:
    """Appends, then sort: one replace of the list whose old value is the loaded list."""
    doc = _person()
    doc.tags.append("0")
    doc.tags.sort()
    assert cm.changes(doc) == [cm.Change("replace", ("tags",), ["0", "a", "b"], ["a", "b"])]
    other = _person()
    other.tags.append("c")
    other.tags = ["z"]
    assert cm.changes(other) == [cm.Change("replace", ("tags",), ["z"], ["a", "b"])]
    assert _patched_is_dumped(doc) and _patched_is_dumped(other)


def test_side_changes_are_listed_in_the_order_of_the_edits() -> None:
    """An append, a log edit of another field, a nested set: listed in that order."""
    doc = _person(meta={"k": 1})
    doc.tags.append("c")
    del doc.meta["k"]
    assert doc.address is not None
    doc.address.city = "Rome"
    assert [c.path for c in cm.changes(doc)] == [("tags", 2), ("meta", "k"), ("address", "city")]
    assert _patched_is_dumped(doc)


def test_reset_forgets_the_side_tables_and_tracks_again() -> None:
    """After a reset (as after a flush) nothing is left, and the next edits are tracked."""
    doc = _person()
    assert doc.address is not None
    doc.address.city = "Rome"
    doc.tags.append("c")
    state = _state(doc)
    state.reset()
    assert cm.changes(doc) == [] and not state.has_changes
    assert "_cm_sets" not in doc.address.__dict__
    doc.address.city = "Paris"
    doc.tags.append("d")
    assert cm.changes(doc) == [
        cm.Change("replace", ("address", "city"), "Paris", "Rome"),
        cm.Change("add", ("tags", 3), "d"),
    ]


def test_first_side_change_reports_the_document_dirty_once() -> None:
    """The owner is told on the first nested set or append, and not again."""
    calls: list[int] = []

    class Counting(InstanceState):
        def on_first_change(self) -> None:
            calls.append(1)

    doc = _person()
    _state(doc).__class__ = Counting
    assert doc.address is not None
    doc.address.city = "Rome"
    doc.tags.append("c")
    doc.address.city = "Paris"
    assert calls == [1]


@pytest.mark.parametrize("kind", ["nested", "append"])
def test_round_limit_names_a_receiver_that_edits_through_a_side_table(kind: str) -> None:
    """A hook repeating a nested set or an append is named by the round limit; idle is not."""
    db = cm.connect()
    setup = cm.Session(db)
    setup.add(Person(id="p", name="Ann", address=Address(street="Main 1", city="Oslo")))
    setup.flush()
    s = cm.Session(db, hook_rounds=2)
    doc = s.get(Person, "p")
    assert doc is not None and doc.address is not None
    address = doc.address

    def looping(sender: type, **kw: Any) -> None:
        if kind == "nested":
            address.city += "x"  # in the side table already: the hot path
        else:
            doc.tags.append("x")

    def idle(sender: type, **kw: Any) -> None:
        address.city = address.city  # the same value: no change

    address.city = "Rome"
    doc.tags.append("first")
    signals.document_changed.connect(looping, sender=Person)
    signals.document_changed.connect(idle, sender=Person)
    try:
        with pytest.raises(cm.HookLimitError) as caught:
            s.flush()
    finally:
        signals.document_changed.disconnect(looping, sender=Person)
        signals.document_changed.disconnect(idle, sender=Person)
    assert [name.rsplit(".", 1)[-1] for name in caught.value.receivers] == ["looping"]
