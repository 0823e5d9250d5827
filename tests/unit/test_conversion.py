"""Conversion: every supported field type, validation errors, and couchmapper's own converter."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import cattrs
import pytest
from models import Address, Color, Everything, Geo, Person, Priority

import couchmapper as cm
from couchmapper.model.conversion import codec_for, converter


def load_everything(**fields: Any) -> Everything:
    """Load an Everything document with ``fields`` over its defaults."""
    raw = {**cm.dump(Everything(id="e")), **fields}
    return cm.load(Everything, raw)


def load_error(**fields: Any) -> cm.ValidationError:
    """The ValidationError of loading an Everything document with bad ``fields``."""
    with pytest.raises(cm.ValidationError) as info:
        load_everything(**fields)
    return info.value


@pytest.mark.parametrize(
    ("field", "stored", "live"),
    [
        ("s", "text", "text"),
        ("i", -7, -7),
        ("f", 1.5, 1.5),
        ("b", True, True),
        ("none", None, None),
        ("opt", None, None),
        ("opt", 4, 4),
        ("union", 3, 3),
        ("union", "three", "three"),
        ("lit", 3, 3),
        ("lit", "b", "b"),
        ("color", "blue", Color.BLUE),
        ("prio", 2, Priority.HIGH),
        (
            "when",
            "2024-05-06T07:08:09.123456+02:00",
            dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ),
        ("when", "2024-05-06T07:08:09Z", dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)),
        ("naive", "2024-05-06T07:08:09", dt.datetime(2024, 5, 6, 7, 8, 9)),
        ("day", "2024-02-29", dt.date(2024, 2, 29)),
        ("clock", "23:59:58.5", dt.time(23, 59, 58, 500000)),
        ("money", "12.340", Decimal("12.340")),
        (
            "uid",
            "12345678-1234-5678-1234-567812345678",
            uuid.UUID("12345678123456781234567812345678"),
        ),
        ("blob", "AAH/", b"\x00\x01\xff"),
        ("ints", [1, 2], [1, 2]),
        ("names", ["a", "b"], {"a", "b"}),
        ("frozen", [3, 1], frozenset({1, 3})),
        ("pair", [1, "x"], (1, "x")),
        ("many", [1.0, 2], (1.0, 2.0)),
        ("scores", {"a": 1}, {"a": 1.0}),
        ("nested", {"k": [{"a": 1}, {}]}, {"k": [{"a": 1}, {}]}),
        ("matrix", [[1], [], [2, 3]], [[1], [], [2, 3]]),
        ("days", ["2020-01-01"], [dt.date(2020, 1, 1)]),
        ("point", {"lat": 1.0, "lon": 2.0}, Geo(lat=1.0, lon=2.0)),
        ("points", [{"lat": 1.0, "lon": 2.0}], [Geo(lat=1.0, lon=2.0)]),
        ("by_name", {"h": {"street": "s", "city": "c"}}, {"h": Address(street="s", city="c")}),
        ("raw", {"any": [1, "two", None, {"x": True}]}, {"any": [1, "two", None, {"x": True}]}),
    ],
)
def test_each_type_loads_and_dumps(field: str, stored: Any, live: Any) -> None:
    """A stored value loads as the live value; an untouched document dumps back as loaded."""
    doc = load_everything(**{field: stored})
    assert getattr(doc, field) == live
    assert type(getattr(doc, field)) is type(live) or isinstance(getattr(doc, field), type(live))
    assert cm.load(Everything, cm.dump(doc)) == doc


def test_dump_renders_every_type_as_json() -> None:
    """Dates are ISO 8601, decimals and uuids strings, bytes base64, sets sorted lists."""
    doc = Everything(
        when=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        day=dt.date(2024, 1, 2),
        clock=dt.time(1, 2),
        money=Decimal("0.10"),
        uid=uuid.UUID(int=255),
        blob=b"hi",
        names={"b", "a"},
        frozen=frozenset({2, 1}),
        pair=(1, "x"),
        color=Color.GREEN,
        prio=Priority.HIGH,
    )
    raw = cm.dump(doc)
    assert raw["when"] == "2024-01-02T03:04:05+00:00"
    assert raw["day"] == "2024-01-02"
    assert raw["clock"] == "01:02:00"
    assert raw["money"] == "0.10"
    assert raw["uid"] == "00000000-0000-0000-0000-0000000000ff"
    assert raw["blob"] == "aGk="
    assert raw["names"] == ["a", "b"]
    assert raw["frozen"] == [1, 2]
    assert raw["pair"] == [1, "x"]
    assert (raw["color"], raw["prio"]) == ("green", 2)


def test_loaded_containers_are_tracked_types() -> None:
    """Lists, dicts and sets load as tracked containers that still equal plain ones."""
    doc = load_everything(ints=[1], scores={"a": 1.0}, names=["x"], raw={"l": [1]})
    assert isinstance(doc.ints, list) and type(doc.ints) is not list
    assert isinstance(doc.scores, dict) and type(doc.scores) is not dict
    assert isinstance(doc.names, set) and type(doc.names) is not set
    assert type(doc.raw["l"]) is not list and doc.raw["l"] == [1]


@pytest.mark.parametrize(
    ("field", "stored", "path", "expected"),
    [
        ("s", 5, "s", "str"),
        ("i", "5", "i", "int"),
        ("i", 1.0, "i", "int"),
        ("i", True, "i", "int"),
        ("f", "1", "f", "float"),
        ("b", 1, "b", "bool"),
        ("none", 0, "none", "None"),
        ("opt", "x", "opt", "int | None"),
        ("union", 1.5, "union", "int | str"),
        ("lit", "c", "lit", "one of 'a', 'b', 3"),
        ("color", "pink", "color", "Color ('red', 'green', 'blue')"),
        ("when", "yesterday", "when", "datetime"),
        ("when", 12, "when", "datetime (as a string)"),
        ("day", "2024-13-01", "day", "date"),
        ("clock", "25:00", "clock", "time"),
        ("money", "NaN", "money", "Decimal"),
        ("uid", "nope", "uid", "UUID"),
        ("blob", "!!", "blob", "bytes"),
        ("ints", [1, "2"], "ints[1]", "int"),
        ("ints", {"a": 1}, "ints", "list[int]"),
        ("names", [1], "names[0]", "str"),
        ("pair", [1], "pair", "tuple[int, str]"),
        ("pair", [1, 2], "pair[1]", "str"),
        ("scores", {"a": "x"}, "scores.a", "float"),
        ("nested", {"k": [{"a": "1"}]}, "nested.k[0].a", "int"),
        ("matrix", [[1], [2, None]], "matrix[1][1]", "int"),
        ("point", {"lat": "n", "lon": 1.0}, "point.lat", "float"),
        ("point", {"lat": 1.0}, "point.lon", "float"),
        ("points", [{"lat": 1.0, "lon": 2.0}, 3], "points[1]", "Geo object"),
        ("by_name", {"h": {"street": 1, "city": "c"}}, "by_name.h.street", "str"),
    ],
)
def test_bad_stored_values_name_path_and_expected_type(
    field: str, stored: Any, path: str, expected: str
) -> None:
    """A wrong stored value raises ValidationError naming the doc id, path and expected type."""
    error = load_error(**{field: stored})
    assert error.doc_id == "e"
    assert [(e.path, e.expected) for e in error.errors] == [(path, expected)]
    assert "'e'" in str(error) and path in str(error)


def test_all_errors_of_one_document_are_reported_together() -> None:
    """Every bad field of one document appears in one ValidationError."""
    with pytest.raises(cm.ValidationError) as info:
        cm.load(Person, {"_id": "p7", "name": 1, "age": "x", "tags": [1, "ok", 2]})
    error = info.value
    assert error.doc_id == "p7"
    assert error.cls_name == "Person"
    assert [e.path for e in error.errors] == ["name", "age", "tags[0]", "tags[2]"]
    assert str(error).startswith("Person document 'p7': 4 invalid field(s)")


def test_missing_required_field_is_reported() -> None:
    """A required field absent from the stored JSON is an error, not a silent default."""
    with pytest.raises(cm.ValidationError) as info:
        cm.load(Person, {"_id": "p8"})
    assert [(e.path, e.message) for e in info.value.errors] == [("name", "missing")]


def test_non_object_document_is_refused() -> None:
    """An embedded value that is not a JSON object is refused with its path."""
    with pytest.raises(cm.ValidationError, match="address"):
        cm.load(Person, {"_id": "p", "name": "n", "address": "Main street"})


def test_value_smuggled_past_the_descriptor_fails_at_dump() -> None:
    """A bad value written into ``__dict__`` directly is caught when the document is dumped."""
    doc = Person(name="x", id="p1")
    doc.__dict__["age"] = "old"
    with pytest.raises(cm.ValidationError) as info:
        cm.dump(doc)
    assert info.value.doc_id == "p1"
    assert [e.path for e in info.value.errors] == ["age"]


def test_assignment_converts_ints_for_float_fields() -> None:
    """An int assigned to a float field is stored as a float."""
    geo = Geo(lat=1.0, lon=2.0)
    geo.lat = 3
    assert type(geo.lat) is float


def test_converter_is_couchmappers_own() -> None:
    """couchmapper's converter is not cattrs' global one, and the global one is untouched."""
    assert isinstance(converter, cattrs.Converter)
    assert converter is not cattrs.global_converter
    assert cattrs.global_converter.structure("5", int) == 5  # its usual coercion, unchanged


def test_converter_structures_and_unstructures_models() -> None:
    """``converter.structure``/``unstructure`` go through couchmapper's codecs."""
    geo = converter.structure({"lat": 1.0, "lon": 2.0}, Geo)
    assert geo == Geo(lat=1.0, lon=2.0)
    assert converter.unstructure(Address(street="s", city="c", geo=geo)) == {
        "street": "s",
        "city": "c",
        "geo": {"lat": 1.0, "lon": 2.0},
    }
    assert converter.unstructure({dt.date(2020, 1, 1)}) == ["2020-01-01"]
    with pytest.raises(cm.ValidationError):
        converter.structure("5", int)


def test_unsupported_type_is_a_clear_type_error() -> None:
    """A field type couchmapper cannot store is refused with its name."""
    with pytest.raises(TypeError, match="cannot store values of type complex"):
        codec_for(complex)


def test_codecs_are_cached_per_type() -> None:
    """codec_for returns the same codec for the same type."""
    assert codec_for(list[int]) is codec_for(list[int])


def test_conflict_error_pickles_with_its_merge_details() -> None:
    """A rebase ConflictError keeps paths, base, mine and theirs through pickling."""
    import pickle

    error = cm.ConflictError(
        "d1", "2-x", paths=("name",), base={"a": 1}, mine={"a": 2}, theirs={"a": 3}
    )
    again = pickle.loads(pickle.dumps(error))
    assert (again.doc_id, again.rev, again.paths) == ("d1", "2-x", ("name",))
    assert (again.base, again.mine, again.theirs) == ({"a": 1}, {"a": 2}, {"a": 3})


class _Node(cm.Embedded):
    """A recursive embedded class: nesting its type does not bound."""

    children: list[_Node] = cm.field(factory=list)


class _TreeDoc(cm.Document, type_name="conv-tree"):
    """A document holding a recursive tree."""

    root: _Node | None = None


def test_too_deep_to_load_is_a_validation_error_naming_the_path() -> None:
    """A stored tree too deep to convert is a ValidationError with its id, not RecursionError."""
    raw: dict[str, Any] = {}
    node = raw
    for _ in range(400):
        child: dict[str, Any] = {}
        node["children"] = [child]
        node = child
    with pytest.raises(cm.ValidationError) as caught:
        cm.load(_TreeDoc, {"_id": "t1", "type": "conv-tree", "root": raw})
    assert caught.value.doc_id == "t1"
    (error,) = caught.value.errors
    assert error.path.startswith("root.children[0].children[0]")
    assert "too deep" in error.message
