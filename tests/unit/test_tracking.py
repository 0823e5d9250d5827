"""Change tracking: every mutation recorded as a Change, compaction, JSON Patch, owner hook."""

from __future__ import annotations

from typing import Any

import pytest
from models import Address, Geo, Person

import couchmapper as cm
from couchmapper import MISSING, Change
from couchmapper.model.base import state_of
from couchmapper.tracking import TrackedDict, TrackedList, Tracker, apply_json_patch, to_pointer

BASE: dict[str, Any] = {
    "_id": "ann",
    "_rev": "1-a",
    "type": "person",
    "name": "Ann",
    "age": 30,
    "email": None,
    "tags": ["a", "b", "c"],
    "address": {"street": "Main", "city": "Oslo", "geo": {"lat": 1.0, "lon": 2.0}},
    "addresses": [
        {"street": "s1", "city": "c1", "geo": None},
        {"street": "s2", "city": "c2", "geo": None},
    ],
    "meta": {"k": {"j": 0}, "list": [1, 2]},
    "labels": ["x", "y"],
}


def loaded() -> Person:
    """A persistent-looking Person loaded from ``BASE``."""
    return cm.load(Person, apply_json_patch(BASE, []))


def check_patch(doc: Person) -> None:
    """The JSON Patch of the changes turns BASE into the dumped document."""
    assert apply_json_patch(BASE, cm.changes(doc).to_json_patch()) == cm.dump(doc)


def rep(path: tuple[Any, ...], value: Any, old: Any) -> Change:
    """A replace change."""
    return Change("replace", path, value, old)


def add(path: tuple[Any, ...], value: Any) -> Change:
    """An add change."""
    return Change("add", path, value, MISSING)


def rem(path: tuple[Any, ...], old: Any) -> Change:
    """A remove change."""
    return Change("remove", path, MISSING, old)


# --------------------------------------------------------------------------------------
# One change per kind of mutation.


def test_fresh_load_has_no_changes() -> None:
    """A document just loaded is clean."""
    doc = loaded()
    assert cm.changes(doc) == []
    assert cm.dump(doc) == BASE


def test_field_set_is_a_replace() -> None:
    """Setting a top-level field records a replace with the old value."""
    doc = loaded()
    doc.age = 31
    assert cm.changes(doc) == [rep(("age",), 31, 30)]
    check_patch(doc)


def test_nested_embedded_set_records_the_full_path() -> None:
    """Setting a field of an embedded object records its path from the document root."""
    doc = loaded()
    assert doc.address is not None and doc.address.geo is not None
    doc.address.city = "Rome"
    doc.address.geo.lat = 9.5
    assert cm.changes(doc) == [
        rep(("address", "city"), "Rome", "Oslo"),
        rep(("address", "geo", "lat"), 9.5, 1.0),
    ]
    check_patch(doc)


def test_embedded_in_a_list_records_its_index() -> None:
    """An embedded object inside a list reports its current position."""
    doc = loaded()
    doc.addresses[1].city = "X"
    assert cm.changes(doc) == [rep(("addresses", 1, "city"), "X", "c2")]
    check_patch(doc)


def test_assigning_an_embedded_object_records_its_json() -> None:
    """The value of a replace is the JSON of the new embedded object."""
    doc = loaded()
    doc.address = Address(street="New", city="Bergen")
    new = {"street": "New", "city": "Bergen", "geo": None}
    assert cm.changes(doc) == [rep(("address",), new, BASE["address"])]
    check_patch(doc)


def test_append_is_an_add_at_the_end() -> None:
    """``append`` records an add at the new last index."""
    doc = loaded()
    doc.tags.append("d")
    assert cm.changes(doc) == [add(("tags", 3), "d")]
    check_patch(doc)


def test_dict_in_dict_item_set() -> None:
    """``doc.meta["k"]["j"] = 1`` records a replace at meta/k/j."""
    doc = loaded()
    doc.meta["k"]["j"] = 1
    assert cm.changes(doc) == [rep(("meta", "k", "j"), 1, 0)]
    check_patch(doc)


def test_new_dict_key_is_an_add() -> None:
    """Setting a key that was not there records an add."""
    doc = loaded()
    doc.meta["new"] = {"x": [1]}
    assert cm.changes(doc) == [add(("meta", "new"), {"x": [1]})]
    check_patch(doc)


def test_del_list_item() -> None:
    """``del lst[i]`` records a remove with the old item."""
    doc = loaded()
    del doc.tags[0]
    assert cm.changes(doc) == [rem(("tags", 0), "a")]
    check_patch(doc)


def test_del_dict_key() -> None:
    """``del d[k]`` records a remove with the old value."""
    doc = loaded()
    del doc.meta["k"]
    assert cm.changes(doc) == [rem(("meta", "k"), {"j": 0})]
    check_patch(doc)


def test_pop_list() -> None:
    """``pop()`` and ``pop(0)`` record removes at the popped positions."""
    doc = loaded()
    assert doc.tags.pop() == "c"
    assert doc.tags.pop(0) == "a"
    assert cm.changes(doc) == [rem(("tags", 2), "c"), rem(("tags", 0), "a")]
    check_patch(doc)


def test_pop_dict() -> None:
    """``dict.pop`` records a remove; a missing key with a default records nothing."""
    doc = loaded()
    assert doc.meta.pop("nope", 5) == 5
    assert doc.meta.pop("list") == [1, 2]
    assert cm.changes(doc) == [rem(("meta", "list"), [1, 2])]
    check_patch(doc)


def test_clear_list() -> None:
    """``clear`` removes every item, last first."""
    doc = loaded()
    doc.tags.clear()
    assert cm.changes(doc) == [rem(("tags", 2), "c"), rem(("tags", 1), "b"), rem(("tags", 0), "a")]
    check_patch(doc)


def test_clear_dict() -> None:
    """``clear`` on a dict removes each key."""
    doc = loaded()
    doc.meta.clear()
    assert cm.changes(doc) == [rem(("meta", "k"), {"j": 0}), rem(("meta", "list"), [1, 2])]
    check_patch(doc)


def test_extend() -> None:
    """``extend`` and ``+=`` add each item at the end."""
    doc = loaded()
    doc.tags.extend(["d", "e"])
    doc.tags += ["f"]
    assert cm.changes(doc) == [add(("tags", 3), "d"), add(("tags", 4), "e"), add(("tags", 5), "f")]
    check_patch(doc)


def test_sort_replaces_the_whole_list() -> None:
    """Reordering (``sort``, ``reverse``) is one replace of the whole list."""
    doc = loaded()
    doc.tags.sort(reverse=True)
    assert cm.changes(doc) == [rep(("tags",), ["c", "b", "a"], ["a", "b", "c"])]
    check_patch(doc)


def test_sorting_a_sorted_list_records_nothing() -> None:
    """A reorder that changes nothing is not a change."""
    doc = loaded()
    doc.tags.sort()
    assert cm.changes(doc) == []


def test_insert() -> None:
    """``insert`` records an add at the (clamped) position."""
    doc = loaded()
    doc.tags.insert(1, "z")
    doc.tags.insert(100, "end")
    doc.tags.insert(-100, "start")
    assert cm.changes(doc) == [
        add(("tags", 1), "z"),
        add(("tags", 4), "end"),
        add(("tags", 0), "start"),
    ]
    assert doc.tags == ["start", "a", "z", "b", "c", "end"]
    check_patch(doc)


def test_item_assignment() -> None:
    """``lst[i] = v`` (negative indexes too) records a replace at the real index."""
    doc = loaded()
    doc.tags[-1] = "C"
    assert cm.changes(doc) == [rep(("tags", 2), "C", "c")]
    check_patch(doc)


def test_slice_assignment() -> None:
    """Slice assignment removes the old items and inserts the new ones."""
    doc = loaded()
    doc.tags[0:2] = ["q"]
    assert doc.tags == ["q", "c"]
    assert cm.changes(doc) == [rem(("tags", 0), "a"), rep(("tags", 0), "q", "b")]
    check_patch(doc)


def test_extended_slice_assignment_replaces_the_list() -> None:
    """A stepped slice assignment is one replace of the whole list."""
    doc = loaded()
    doc.tags[::2] = ["x", "z"]
    assert cm.changes(doc) == [rep(("tags",), ["x", "b", "z"], ["a", "b", "c"])]
    check_patch(doc)


def test_del_slice() -> None:
    """``del lst[a:b]`` removes from the end of the slice backwards."""
    doc = loaded()
    del doc.tags[0:2]
    assert cm.changes(doc) == [rem(("tags", 1), "b"), rem(("tags", 0), "a")]
    check_patch(doc)


def test_setdefault() -> None:
    """``setdefault`` records an add only when the key is missing."""
    doc = loaded()
    assert doc.meta.setdefault("k", 5) == {"j": 0}
    assert doc.meta.setdefault("n", [1]) == [1]
    assert cm.changes(doc) == [add(("meta", "n"), [1])]
    check_patch(doc)


def test_update() -> None:
    """``update`` records an add per new key and a replace per existing one."""
    doc = loaded()
    doc.meta.update({"a": 1}, k=2)
    assert cm.changes(doc) == [add(("meta", "a"), 1), rep(("meta", "k"), 2, {"j": 0})]
    check_patch(doc)


def test_set_add_and_discard() -> None:
    """Set edits replace the whole (sorted) array; discarding a missing item records nothing."""
    doc = loaded()
    doc.labels.discard("nope")
    assert cm.changes(doc) == []
    doc.labels.add("a")
    assert cm.changes(doc) == [rep(("labels",), ["a", "x", "y"], ["x", "y"])]
    doc.labels.discard("x")
    assert cm.changes(doc) == [rep(("labels",), ["a", "y"], ["x", "y"])]
    check_patch(doc)


def test_set_operators() -> None:
    """``|=``, ``-=``, ``&=`` and ``^=`` on a tracked set are recorded."""
    doc = loaded()
    doc.labels |= {"q"}
    doc.labels -= {"x"}
    doc.labels &= {"q", "y", "z"}
    doc.labels ^= {"z"}
    assert doc.labels == {"q", "y", "z"}
    assert cm.changes(doc) == [rep(("labels",), ["q", "y", "z"], ["x", "y"])]
    check_patch(doc)


def test_nested_list_in_any_dict() -> None:
    """Lists inside raw JSON (``Any``) are tracked at depth."""
    doc = loaded()
    doc.meta["list"].append({"deep": []})
    doc.meta["list"][2]["deep"].append(1)
    assert cm.changes(doc) == [add(("meta", "list", 2), {"deep": [1]})]
    check_patch(doc)


def test_json_pointer_escapes_slash_and_tilde() -> None:
    """Keys with ``/`` and ``~`` are escaped in the patch paths (RFC 6901)."""
    doc = loaded()
    doc.meta["a/b~c"] = 1
    assert cm.changes(doc).to_json_patch() == [{"op": "add", "path": "/meta/a~1b~0c", "value": 1}]
    assert to_pointer(("x", 0, "~/")) == "/x/0/~0~1"
    check_patch(doc)


def test_to_json_patch_shapes() -> None:
    """add/replace carry a value, remove does not."""
    doc = loaded()
    doc.age = 1
    doc.tags.append("x")
    del doc.meta["k"]
    assert cm.changes(doc).to_json_patch() == [
        {"op": "add", "path": "/tags/3", "value": "x"},
        {"op": "remove", "path": "/meta/k"},
        {"op": "replace", "path": "/age", "value": 1},
    ]


def test_change_values_are_detached_json() -> None:
    """Later edits never alter a recorded change; values are JSON (a set is a list)."""
    doc = loaded()
    doc.meta["new"] = {"x": [1]}
    recorded = cm.changes(doc)
    doc.tags.append("later")
    assert recorded == [add(("meta", "new"), {"x": [1]})]
    assert type(cm.changes(doc)[0].value) is dict


def test_changes_of_an_embedded_object_are_its_own() -> None:
    """``cm.changes(embedded)`` filters the document's changes to that subtree."""
    doc = loaded()
    assert doc.address is not None
    doc.age = 2
    doc.address.city = "Rome"
    assert cm.changes(doc.address) == [rep(("address", "city"), "Rome", "Oslo")]
    assert cm.changes(doc).paths == {"age", "address.city"}


def test_transient_document_has_no_changes() -> None:
    """A document never loaded has no tracker, so no changes."""
    doc = Person(name="new")
    doc.age = 3
    doc.tags.append("x")
    assert cm.changes(doc) == []
    assert state_of(doc) is None


def test_detached_embedded_object_no_longer_reports() -> None:
    """An embedded object replaced by another stops recording into the document."""
    doc = loaded()
    old = doc.address
    assert old is not None
    doc.address = None
    old.city = "ignored"
    assert cm.changes(doc) == [rep(("address",), None, BASE["address"])]
    check_patch(doc)


def test_embedded_object_assigned_twice_is_copied() -> None:
    """An embedded object already in a document is copied when assigned elsewhere."""
    doc = loaded()
    assert doc.address is not None
    doc.addresses.append(doc.address)
    assert doc.addresses[-1] is not doc.address
    doc.addresses[-1].city = "Copy"
    assert doc.address.city == "Oslo"
    check_patch(doc)


# --------------------------------------------------------------------------------------
# Compaction.


def test_repeated_sets_keep_the_first_old_value() -> None:
    """Setting a field several times leaves one replace with the original old value."""
    doc = loaded()
    doc.age = 1
    doc.age = 2
    doc.age = 3
    assert cm.changes(doc) == [rep(("age",), 3, 30)]


def test_set_back_to_original_is_clean() -> None:
    """Setting a field back to its loaded value removes the change."""
    doc = loaded()
    doc.age = 1
    doc.name = "Bob"
    doc.age = 30
    assert cm.changes(doc) == [rep(("name",), "Bob", "Ann")]
    doc.name = "Ann"
    assert cm.changes(doc) == []


def test_set_back_distinguishes_int_float_and_bool() -> None:
    """1, 1.0 and True are different JSON values: setting 30 -> 30.0 is a change."""
    doc = loaded()
    doc.meta["k"]["j"] = 0.0
    assert cm.changes(doc) == [rep(("meta", "k", "j"), 0.0, 0)]
    doc.meta["k"]["j"] = False
    assert cm.changes(doc) == [rep(("meta", "k", "j"), False, 0)]
    doc.meta["k"]["j"] = 0
    assert cm.changes(doc) == []


def test_nested_set_back_is_clean() -> None:
    """Nested edits that restore the loaded value leave nothing."""
    doc = loaded()
    assert doc.address is not None
    doc.address.city = "Rome"
    doc.address.city = "Oslo"
    doc.meta["k"]["j"] = 5
    doc.meta["k"] = {"j": 0}
    assert cm.changes(doc) == []


def test_add_then_remove_leaves_nothing() -> None:
    """An item or key added and then removed leaves no change."""
    doc = loaded()
    doc.tags.append("x")
    doc.tags.pop()
    doc.meta["tmp"] = 1
    del doc.meta["tmp"]
    doc.tags.insert(0, "y")
    doc.tags.remove("y")
    assert cm.changes(doc) == []


def test_edit_inside_a_new_value_folds_into_it() -> None:
    """A change inside a value added in this log is folded into that add."""
    doc = loaded()
    doc.meta["new"] = {"a": 1}
    doc.meta["new"]["b"] = 2
    doc.address = Address(street="s", city="c")
    doc.address.geo = Geo(lat=1.0, lon=1.0)
    assert cm.changes(doc) == [
        add(("meta", "new"), {"a": 1, "b": 2}),
        rep(
            ("address",),
            {"street": "s", "city": "c", "geo": {"lat": 1.0, "lon": 1.0}},
            BASE["address"],
        ),
    ]
    check_patch(doc)


def test_setting_a_container_supersedes_edits_inside_it() -> None:
    """A whole-field set absorbs earlier edits inside it; the old value is the loaded one."""
    doc = loaded()
    doc.tags.append("x")
    doc.tags[0] = "z"
    doc.tags = ["only"]
    assert cm.changes(doc) == [rep(("tags",), ["only"], ["a", "b", "c"])]
    check_patch(doc)


def test_remove_then_insert_at_same_place_is_a_replace() -> None:
    """Popping an item and inserting another at its place is one replace."""
    doc = loaded()
    doc.tags.pop(1)
    doc.tags.insert(1, "B")
    assert cm.changes(doc) == [rep(("tags", 1), "B", "b")]
    check_patch(doc)


def test_two_inserts_at_one_index_stay_two() -> None:
    """Two inserts at the same index are two items, not one."""
    doc = loaded()
    doc.tags.insert(0, "x")
    doc.tags.insert(0, "y")
    assert cm.changes(doc) == [add(("tags", 0), "x"), add(("tags", 0), "y")]
    check_patch(doc)


def test_insert_keeps_its_place_before_later_edits_of_the_list() -> None:
    """An insert merged with a later set of the same item stays before other edits."""
    doc = loaded()
    doc.tags.insert(0, "x")
    doc.tags[1] = "A"
    doc.tags[0] = "X"
    assert doc.tags == ["X", "A", "b", "c"]
    assert cm.changes(doc) == [add(("tags", 0), "X"), rep(("tags", 1), "A", "a")]
    check_patch(doc)


def test_insert_before_an_edited_item_keeps_the_edit() -> None:
    """Editing an item and then inserting before it keeps both changes."""
    doc = loaded()
    doc.addresses[0].city = "Z"
    doc.addresses.insert(0, Address(street="n", city="n"))
    assert cm.changes(doc) == [
        rep(("addresses", 0, "city"), "Z", "c1"),
        add(("addresses", 0), {"street": "n", "city": "n", "geo": None}),
    ]
    check_patch(doc)


# --------------------------------------------------------------------------------------
# The owner hook.


class CountingTracker(Tracker):
    """A tracker counting its first-change notifications."""

    calls = 0

    def on_first_change(self) -> None:
        """Count."""
        self.calls += 1


def test_owner_hook_runs_once_on_first_change() -> None:
    """on_first_change runs exactly once however many changes follow."""
    doc = loaded()
    state = state_of(doc)
    assert state is not None
    calls: list[object] = []
    state.on_first_change = lambda: calls.append(state)  # type: ignore[method-assign]
    assert calls == []
    doc.age = 1
    doc.tags.append("x")
    doc.meta["k"]["j"] = 3
    assert doc.address is not None
    doc.address.city = "y"
    assert calls == [state]


def test_owner_hook_runs_for_a_nested_first_change() -> None:
    """The first change may come from deep inside; the hook still runs once."""
    doc = loaded()
    state = state_of(doc)
    assert state is not None
    calls: list[int] = []
    state.on_first_change = lambda: calls.append(1)  # type: ignore[method-assign]
    doc.meta["k"]["j"] = 3
    doc.age = 2
    assert calls == [1]


def test_owner_hook_not_called_for_a_no_op() -> None:
    """Assigning the current value is not a change and notifies nobody."""
    doc = loaded()
    state = state_of(doc)
    assert state is not None
    calls: list[int] = []
    state.on_first_change = lambda: calls.append(1)  # type: ignore[method-assign]
    doc.age = 30
    doc.tags.sort()
    assert calls == []
    assert not state.has_changes


def test_owner_hook_runs_again_after_reset() -> None:
    """After reset (a flush), the next change notifies again."""
    tracker = CountingTracker()
    tracker.record_replace(("a",), 1, 0)
    tracker.record_replace(("b",), 1, 0)
    assert tracker.calls == 1
    tracker.reset()
    assert tracker.changes == []
    tracker.set_scalar("a", 0, 2)
    assert tracker.calls == 2


def test_scalar_fast_path_and_log_agree() -> None:
    """A top-level field set after a nested edit of the same field goes through the log."""
    tracker = Tracker()
    tracker.record_add(("tags", 0), "x")
    assert not tracker.can_set_scalar("tags")
    assert tracker.can_set_scalar("age")
    tracker.set_scalar("age", 1, 2)
    tracker.set_scalar("age", 2, 1)
    assert tracker.changes == [add(("tags", 0), "x")]


# --------------------------------------------------------------------------------------
# Containers and JSON Patch.


def test_untracked_containers_behave_as_lists_and_dicts() -> None:
    """Tracked containers outside a document work as plain ones and copy to plain ones."""
    items = TrackedList([1, [2]])
    items.append(3)
    items[1].append(4)
    assert items == [1, [2, 4], 3]
    assert type(items.to_plain()[1]) is list
    mapping = TrackedDict({"a": {"b": 1}})
    mapping["a"]["c"] = 2
    assert mapping.to_plain() == {"a": {"b": 1, "c": 2}}


def test_apply_json_patch_does_not_mutate_input() -> None:
    """apply_json_patch works on a copy."""
    doc = {"a": [1]}
    out = apply_json_patch(doc, [{"op": "add", "path": "/a/-", "value": 2}])
    assert out == {"a": [1, 2]}
    assert doc == {"a": [1]}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "remove", "path": "/a/5"},
        {"op": "add", "path": "/a/9", "value": 1},
        {"op": "remove", "path": ""},
    ],
)
def test_apply_json_patch_rejects_operations_that_do_not_fit(operation: dict[str, Any]) -> None:
    """An operation that does not fit the document raises ValueError."""
    with pytest.raises(ValueError, match=r"does not apply|whole document"):
        apply_json_patch({"a": [1]}, [operation])
