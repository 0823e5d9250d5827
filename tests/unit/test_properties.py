"""Hypothesis properties of conversion and change tracking.

1. ``load(dump(x)) == x`` for generated documents over every supported field type.
2. After any sequence of mutations, the JSON Patch of ``cm.changes(doc)`` applied to the
   loaded JSON gives exactly ``cm.dump(doc)``.
3. Unknown fields, top level and inside embedded objects, survive a round trip untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import Address, Color, Everything, Geo, Person, Priority

import couchmapper as cm

PROFILE = settings(
    max_examples=int(os.environ.get("CM_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Moderate example counts, so the module runs in seconds (``CM_PROPERTY_EXAMPLES`` for more)."""

# --------------------------------------------------------------------------------------
# Strategies.

texts = st.text(max_size=8)
keys = st.text(alphabet="abcxyz_~/ ", min_size=1, max_size=4)
ints = st.integers(min_value=-(2**53), max_value=2**53)
floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars: st.SearchStrategy[Any] = st.none() | st.booleans() | ints | floats | texts
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(keys, json_values, max_size=3)
doc_ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=12)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
aware = st.datetimes(timezones=offsets)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None)
geos = st.builds(Geo, lat=floats, lon=floats)
addresses = st.builds(Address, street=texts, city=texts, geo=st.none() | geos)


def _everything(**fields: Any) -> Everything:
    return Everything(**fields)


everythings = st.builds(
    _everything,
    id=doc_ids,
    s=texts,
    i=ints,
    f=floats,
    b=st.booleans(),
    opt=st.none() | ints,
    union=ints | texts,
    lit=st.sampled_from(["a", "b", 3]),
    color=st.sampled_from(Color),
    prio=st.sampled_from(Priority),
    when=aware,
    naive=st.datetimes(),
    day=st.dates(),
    clock=st.times(),
    money=decimals,
    uid=st.uuids(),
    blob=st.binary(max_size=8),
    ints=st.lists(ints, max_size=3),
    names=st.sets(texts, max_size=3),
    frozen=st.frozensets(ints, max_size=3),
    pair=st.tuples(ints, texts),
    many=st.lists(floats, max_size=3).map(tuple),
    scores=st.dictionaries(keys, floats, max_size=3),
    nested=st.dictionaries(
        keys, st.lists(st.dictionaries(keys, ints, max_size=2), max_size=2), max_size=2
    ),
    matrix=st.lists(st.lists(ints, max_size=3), max_size=3),
    days=st.lists(st.dates(), max_size=2),
    point=st.none() | geos,
    points=st.lists(geos, max_size=2),
    by_name=st.dictionaries(keys, addresses, max_size=2),
    raw=json_values,
)


def _person(**fields: Any) -> Person:
    return Person(**fields)


people = st.builds(
    _person,
    id=doc_ids,
    name=texts,
    age=ints,
    email=st.none() | texts,
    tags=st.lists(texts, max_size=4),
    address=st.none() | addresses,
    addresses=st.lists(addresses, max_size=3),
    meta=json_objects,
    labels=st.sets(texts, max_size=3),
)


# --------------------------------------------------------------------------------------
# Property 1: load(dump(x)) == x.


@PROFILE
@given(everythings)
def test_load_of_dump_is_identity_for_every_field_type(doc: Everything) -> None:
    """Loading the dumped JSON of a document gives an equal document."""
    raw = cm.dump(doc)
    loaded = cm.load(Everything, raw)
    assert loaded == doc
    assert cm.dump(loaded) == raw


@PROFILE
@given(people)
def test_load_of_dump_is_identity_for_nested_documents(doc: Person) -> None:
    """Embedded objects, lists of them and raw JSON round-trip exactly."""
    assert cm.load(Person, cm.dump(doc)) == doc


# --------------------------------------------------------------------------------------
# Property 2: the JSON Patch of the changes turns the loaded JSON into the dumped JSON.

Mutation = Callable[[st.DataObject, Person], None]


def _index(data: st.DataObject, items: list[Any], extra: int = 0) -> int:
    return data.draw(st.integers(min_value=-len(items), max_value=len(items) - 1 + extra))


def _set_scalar(data: st.DataObject, p: Person) -> None:
    field = data.draw(st.sampled_from(["name", "age", "email"]))
    if field == "name":
        p.name = data.draw(st.sampled_from([p.name, "x", "y", ""]))
    elif field == "age":
        p.age = data.draw(st.sampled_from([p.age, p.age + 1, 0, 7]))
    else:
        p.email = data.draw(st.none() | st.sampled_from(["a@b", "c@d"]))


def _edit_tags(data: st.DataObject, p: Person) -> None:
    tags = p.tags
    word = data.draw(st.sampled_from(["a", "b", "c", "d"]))
    op = data.draw(
        st.sampled_from(
            [
                *("append", "insert", "pop", "del", "set", "slice", "sort", "reverse"),
                *("extend", "clear", "remove", "iadd", "delslice", "assign"),
            ]
        )
    )
    if op == "append":
        tags.append(word)
    elif op == "insert":
        tags.insert(data.draw(st.integers(-5, 5)), word)
    elif op == "extend":
        tags.extend([word, word + word])
    elif op == "iadd":
        tags += [word]
    elif op == "sort":
        tags.sort()
    elif op == "reverse":
        tags.reverse()
    elif op == "clear":
        tags.clear()
    elif op == "assign":
        p.tags = [word]
    elif op == "slice":
        start, stop = sorted(data.draw(st.lists(st.integers(0, 5), min_size=2, max_size=2)))
        tags[start:stop] = data.draw(st.lists(st.sampled_from(["p", "q"]), max_size=3))
    elif op == "delslice":
        start, stop = sorted(data.draw(st.lists(st.integers(0, 5), min_size=2, max_size=2)))
        del tags[start:stop]
    elif not tags:
        return
    elif op == "pop":
        tags.pop(_index(data, tags))
    elif op == "del":
        del tags[_index(data, tags)]
    elif op == "set":
        tags[_index(data, tags)] = word
    elif op == "remove":
        tags.remove(tags[_index(data, tags)])


def _edit_address(data: st.DataObject, p: Person) -> None:
    op = data.draw(st.sampled_from(["replace", "city", "geo", "lat", "none"]))
    if op == "replace" or (p.address is None and op != "none"):
        p.address = data.draw(addresses)
    elif op == "none":
        p.address = None
    elif p.address is not None:
        if op == "city":
            p.address.city = data.draw(st.sampled_from(["Oslo", "Rome", p.address.city]))
        elif op == "geo" or p.address.geo is None:
            p.address.geo = data.draw(st.none() | geos)
        else:
            p.address.geo.lat = data.draw(st.sampled_from([0.0, 1.5, p.address.geo.lat]))


def _edit_addresses(data: st.DataObject, p: Person) -> None:
    items = p.addresses
    op = data.draw(st.sampled_from(["append", "insert", "pop", "city", "geo", "set", "reverse"]))
    if op == "append":
        items.append(data.draw(addresses))
    elif op == "insert":
        items.insert(data.draw(st.integers(-3, 3)), data.draw(addresses))
    elif op == "reverse":
        items.reverse()
    elif not items:
        return
    elif op == "pop":
        items.pop(_index(data, items))
    elif op == "set":
        items[_index(data, items)] = data.draw(addresses)
    elif op == "city":
        items[_index(data, items)].city = data.draw(st.sampled_from(["A", "B"]))
    else:
        target = items[_index(data, items)]
        if target.geo is None or data.draw(st.booleans()):
            target.geo = data.draw(st.none() | geos)
        else:
            target.geo.lon = data.draw(st.sampled_from([0.0, 2.5]))


def _edit_meta(data: st.DataObject, p: Person) -> None:
    meta = p.meta
    key = data.draw(st.sampled_from(["k", "j", "x/y", "~"]))
    op = data.draw(
        st.sampled_from(
            ["set", "del", "pop", "setdefault", "update", "clear", "popitem", "deep", "deep-list"]
        )
    )
    if op == "set":
        meta[key] = data.draw(json_values)
    elif op == "setdefault":
        meta.setdefault(key, data.draw(json_values))
    elif op == "update":
        meta.update(data.draw(json_objects))
    elif op == "clear":
        meta.clear()
    elif op in ("del", "pop"):
        if key in meta:
            if op == "del":
                del meta[key]
            else:
                meta.pop(key)
    elif op == "popitem":
        if meta:
            meta.popitem()
    elif op == "deep":
        inner = meta.get(key)
        if isinstance(inner, dict):
            inner[data.draw(st.sampled_from(["a", "b"]))] = data.draw(json_values)
        else:
            meta[key] = {"a": data.draw(json_scalars)}
    else:
        items = meta.get(key)
        if isinstance(items, list):
            delete = data.draw(st.booleans())
            if items and delete:
                del items[_index(data, items)]
            else:
                items.insert(data.draw(st.integers(-3, 3)), data.draw(json_values))
        else:
            meta[key] = [data.draw(json_scalars)]


def _edit_labels(data: st.DataObject, p: Person) -> None:
    word = data.draw(st.sampled_from(["a", "b", "c"]))
    op = data.draw(st.sampled_from(["add", "discard", "clear", "ior", "isub"]))
    if op == "add":
        p.labels.add(word)
    elif op == "discard":
        p.labels.discard(word)
    elif op == "clear":
        p.labels.clear()
    elif op == "ior":
        p.labels |= {word}
    else:
        p.labels -= {word}


MUTATIONS: list[Mutation] = [
    _set_scalar,
    _edit_tags,
    _edit_address,
    _edit_addresses,
    _edit_meta,
    _edit_labels,
]


def _patched(base: dict[str, Any], doc: Person) -> Any:
    return cm.apply_json_patch(base, cm.changes(doc).to_json_patch())


@PROFILE
@given(people, st.data())
def test_json_patch_of_changes_turns_loaded_json_into_dumped_json(
    original: Person, data: st.DataObject
) -> None:
    """After every step of a random mutation sequence, patch(loaded) == dump(doc)."""
    base = cm.dump(original)
    doc = cm.load(Person, base)
    for _ in range(data.draw(st.integers(min_value=1, max_value=12))):
        data.draw(st.sampled_from(MUTATIONS))(data, doc)
        assert _patched(base, doc) == cm.dump(doc)
    # compaction never leaves a change that does nothing
    for change in cm.changes(doc):
        assert (
            change.op != "replace"
            or change.value != change.old
            or type(change.value) is not type(change.old)
        )


@PROFILE
@given(people, st.data())
def test_a_document_set_back_by_whole_fields_is_clean(
    original: Person, data: st.DataObject
) -> None:
    """Mutate anything, then assign every field its loaded value: no changes remain."""
    base = cm.dump(original)
    doc = cm.load(Person, base)
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        data.draw(st.sampled_from(MUTATIONS))(data, doc)
    fresh = cm.load(Person, base)
    for name in ("name", "age", "email", "tags", "address", "addresses", "meta", "labels"):
        setattr(doc, name, getattr(fresh, name))
    assert cm.changes(doc) == []
    assert cm.dump(doc) == base


# --------------------------------------------------------------------------------------
# Property 3: unknown fields survive.

# CouchDB reserves top-level keys starting with "_", and the model's own keys are not unknown.
unknown_keys = st.text(alphabet="defghijklmnopqrsuvw_", min_size=1, max_size=6).filter(
    lambda key: (
        not key.startswith("_")
        and key not in {"name", "age", "email", "tags", "meta", "geo", "street", "city", "type"}
    )
)
unknown_fields = st.dictionaries(unknown_keys, json_values, min_size=1, max_size=3)


@PROFILE
@given(people, unknown_fields, unknown_fields, unknown_fields, st.data())
def test_unknown_fields_survive_a_round_trip_untouched(
    original: Person,
    top: dict[str, Any],
    in_address: dict[str, Any],
    in_list_item: dict[str, Any],
    data: st.DataObject,
) -> None:
    """Unknown keys at the top level and inside embedded objects are written back as read."""
    original.address = original.address or Address(street="s", city="c")
    original.addresses.append(Address(street="t", city="d"))
    raw = cm.dump(original)
    raw = {**top, **raw}
    raw["address"] = {**raw["address"], **in_address}
    raw["addresses"][-1] = {**raw["addresses"][-1], **in_list_item}
    raw["_attachments"] = {"a.txt": {"stub": True, "digest": "md5-x", "length": 1}}
    raw["_conflicts"] = ["2-abc"]
    raw["_rev"] = "1-xyz"
    snapshot = cm.apply_json_patch(raw, [])  # a deep copy
    doc = cm.load(Person, raw)
    assert cm.dump(doc) == snapshot
    for _ in range(data.draw(st.integers(min_value=0, max_value=4))):
        data.draw(st.sampled_from([_set_scalar, _edit_tags, _edit_meta, _edit_labels]))(data, doc)
    assert doc.address is not None
    doc.address.city = "elsewhere"
    doc.addresses[-1].street = "moved"
    out = cm.dump(doc)
    for key, value in top.items():
        assert out[key] == value
    for key, value in in_address.items():
        assert out["address"][key] == value
    for key, value in in_list_item.items():
        assert out["addresses"][-1][key] == value
    assert out["_attachments"] == snapshot["_attachments"]
    assert out["_conflicts"] == ["2-abc"]
    assert raw == snapshot  # loading never mutates its input
    assert _patched(snapshot, doc) == out


def test_property_strategies_cover_the_interesting_values() -> None:
    """The strategies above reach aware datetimes, decimals and uuids (sanity check)."""
    doc = Everything(
        when=dt.datetime(2020, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        money=Decimal("-1E+3"),
        uid=uuid.UUID(int=5),
    )
    assert cm.load(Everything, cm.dump(doc)) == doc
