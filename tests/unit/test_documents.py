"""Documents: fields, descriptors, ``_id``/``_rev``, registry, polymorphism, unknown fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import attrs
import pytest
from models import (
    Address,
    Circle,
    Employee,
    Everything,
    Geo,
    Invoice,
    Manager,
    Note,
    Person,
    Shape,
    Square,
)

import couchmapper as cm
from couchmapper.model.base import state_of
from couchmapper.model.fields import Field
from couchmapper.model.registry import registry


def test_documents_are_attrs_classes() -> None:
    """Documents get attrs' __init__, __eq__ and __repr__; ``id`` is keyword-only."""
    ann = Person(name="Ann", id="ann")
    assert ann == Person(name="Ann", id="ann")
    assert ann != Person(name="Bob", id="ann")
    assert "name='Ann'" in repr(ann)
    with pytest.raises(TypeError):
        Person("x", 1, id=None, nope=2)  # type: ignore[call-arg]
    assert attrs.has(Person)


def test_defaults_and_factories_are_fresh_per_instance() -> None:
    """A ``field(factory=list)`` default is not shared between instances."""
    a, b = Person(name="a"), Person(name="b")
    a.tags.append("x")
    assert b.tags == []
    assert a.age == 0 and a.email is None


def test_class_level_access_returns_the_field() -> None:
    """``Person.name`` is the Field descriptor (queries build on it)."""
    assert isinstance(Person.name, Field)
    assert Person.name.name == "name"
    assert Person.name.owner is Person


def test_instance_read_is_a_plain_attribute() -> None:
    """Reading a field returns the stored value (the descriptor has no __get__)."""
    p = Person(name="Ann")
    assert p.__dict__["name"] == "Ann"
    assert p.name == "Ann"


def test_field_rejects_an_unknown_merge_rule() -> None:
    """``cm.field(merge=...)`` accepts 'sum', 'union' or a callable only."""
    with pytest.raises(ValueError, match="merge must be"):
        cm.field(merge="max")


def test_id_and_rev_map_to_underscore_keys() -> None:
    """``id`` is stored as ``_id`` and ``rev`` comes from ``_rev``."""
    doc = cm.load(Person, {"_id": "p1", "_rev": "3-abc", "type": "person", "name": "A"})
    assert doc.id == "p1"
    assert doc.rev == "3-abc"
    raw = cm.dump(doc)
    assert raw["_id"] == "p1" and raw["_rev"] == "3-abc"
    assert "id" not in raw and "rev" not in raw


def test_new_document_has_no_rev_and_no_id_key() -> None:
    """A new document without id dumps without ``_id``/``_rev``."""
    raw = cm.dump(Person(name="x"))
    assert "_id" not in raw and "_rev" not in raw
    assert Person(name="x").rev is None


def test_id_must_be_a_string() -> None:
    """Assigning a non-str id raises TypeError naming the class."""
    with pytest.raises(TypeError, match=r"Person\.id must be a str"):
        Person(name="x", id=5)  # type: ignore[arg-type]


def test_id_is_fixed_once_in_a_session() -> None:
    """A persistent document's id cannot change."""
    doc = cm.load(Person, {"_id": "p1", "name": "A"}, status=cm.Lifecycle.PERSISTENT)
    with pytest.raises(cm.SessionStateError, match="cannot change the id"):
        doc.id = "p2"


def test_dump_writes_the_discriminator() -> None:
    """The type name is written under the discriminator key."""
    assert cm.dump(Person(name="x"))["type"] == "person"
    assert cm.dump(Employee(name="x"))["type"] == "employee"
    assert cm.dump(Circle())["kind"] == "circle"
    assert "type" not in cm.dump(Circle())


def test_type_name_defaults_to_class_name() -> None:
    """Without ``type_name=`` the class name is the type name."""

    class Memo(cm.Document):
        text: str = ""

    assert cm.dump(Memo())["type"] == "Memo"
    assert registry["type"]["Memo"] is Memo


def test_registry_maps_type_names_to_classes() -> None:
    """Every concrete document class is registered under its discriminator and type name."""
    assert registry["type"]["person"] is Person
    assert registry["type"]["manager"] is Manager
    assert registry["kind"]["circle"] is Circle
    assert "Shape" not in registry["kind"]


def test_duplicate_type_name_is_refused() -> None:
    """A second class claiming a type name raises TypeError naming both."""
    with pytest.raises(TypeError, match=r"already used by models\.Person"):

        class Impostor(cm.Document, type_name="person"):
            pass


def test_subclass_loads_as_subclass() -> None:
    """Loading via a base class gives the subclass the discriminator names."""
    doc = cm.load(Person, {"_id": "m", "type": "manager", "name": "M", "reports": ["a"]})
    assert type(doc) is Manager
    assert doc.reports == ["a"]
    emp = cm.load(Employee, {"_id": "e", "type": "employee", "name": "E", "salary": "10.5"})
    assert type(emp) is Employee and emp.salary == Decimal("10.5")


def test_base_class_loads_itself() -> None:
    """A document whose type is the class itself loads as that class."""
    assert type(cm.load(Person, {"_id": "p", "type": "person", "name": "P"})) is Person


def test_missing_discriminator_loads_as_the_requested_class() -> None:
    """A document without a type key loads as the class asked for."""
    assert type(cm.load(Employee, {"_id": "p", "name": "P"})) is Employee


def test_unrelated_type_is_a_validation_error_naming_the_doc_id() -> None:
    """Loading an Invoice as a Person raises ValidationError naming the id and both types."""
    with pytest.raises(cm.ValidationError) as info:
        cm.load(Person, {"_id": "inv-1", "type": "invoice", "number": 1})
    assert info.value.doc_id == "inv-1"
    assert "inv-1" in str(info.value)
    assert "invoice" in str(info.value) and "Person" in str(info.value)


def test_base_type_is_not_a_subclass() -> None:
    """A Person document is not an Employee."""
    with pytest.raises(cm.ValidationError, match="'person'"):
        cm.load(Employee, {"_id": "p", "type": "person", "name": "P"})


def test_unknown_type_name_is_a_validation_error() -> None:
    """A type name nobody registered is refused."""
    with pytest.raises(cm.ValidationError, match="'zzz'"):
        cm.load(Person, {"_id": "p", "type": "zzz", "name": "P"})


def test_configurable_discriminator() -> None:
    """A hierarchy with ``discriminator='kind'`` dispatches on ``kind``."""
    shapes = [
        cm.load(Shape, {"_id": "1", "kind": "circle", "radius": 2.0}),
        cm.load(Shape, {"_id": "2", "kind": "square", "side": 3.0}),
    ]
    assert [type(s) for s in shapes] == [Circle, Square]
    with pytest.raises(cm.ValidationError):
        cm.load(Circle, {"_id": "3", "kind": "square"})


def test_no_discriminator_keeps_a_type_key_as_unknown_field() -> None:
    """With ``discriminator=None`` a ``type`` key is just data, written back unchanged."""
    raw = {"_id": "n", "type": "whatever", "text": "t"}
    doc = cm.load(Note, raw)
    assert type(doc) is Note
    assert cm.dump(doc) == raw


def test_abstract_class_has_no_type_name() -> None:
    """An abstract base writes no discriminator value of its own."""
    assert Shape.__cm_info__.type_name is None
    assert Circle.__cm_info__.discriminator == "kind"


def test_load_rejects_non_document_classes() -> None:
    """``cm.load`` needs a Document class."""
    with pytest.raises(TypeError, match="not a Document class"):
        cm.load(Address, {})  # type: ignore[type-var]


def test_load_accepts_any_mapping() -> None:
    """Any Mapping loads, not only dict."""
    from types import MappingProxyType

    doc = cm.load(Person, MappingProxyType({"_id": "p", "name": "P"}))
    assert doc.name == "P"


def test_loaded_document_has_state() -> None:
    """A loaded document carries its state: id, rev, loaded JSON, lifecycle."""
    raw = {"_id": "p", "_rev": "1-a", "name": "P"}
    doc = cm.load(Person, raw, status=cm.Lifecycle.PERSISTENT)
    state = state_of(doc)
    assert state is not None
    assert (state.doc_id, state.rev, state.loaded, state.status) == (
        "p",
        "1-a",
        raw,
        cm.Lifecycle.PERSISTENT,
    )


# --------------------------------------------------------------------------------------
# Unknown fields, attachments, conflicts.

STORED: dict[str, Any] = {
    "_id": "p9",
    "_rev": "2-b",
    "_attachments": {
        "photo.png": {"content_type": "image/png", "digest": "md5-abc", "length": 3, "stub": True}
    },
    "_conflicts": ["2-a"],
    "type": "person",
    "name": "Zed",
    "age": 4,
    "email": None,
    "legacy_score": 17,
    "prefs": {"theme": "dark", "nested": [1, {"x": None}]},
    "tags": [],
    "address": {"street": "s", "city": "c", "geo": None, "zip": "0150", "extra": {"a": [1]}},
    "addresses": [{"street": "t", "city": "d", "geo": {"lat": 1.0, "lon": 2.0, "alt": 3}}],
    "meta": {},
    "labels": [],
}


def test_unknown_fields_survive_load_and_dump_exactly() -> None:
    """Unknown keys (top level, in embedded objects, in list items) come back unchanged."""
    doc = cm.load(Person, STORED)
    assert cm.dump(doc) == STORED


def test_unknown_fields_survive_modification() -> None:
    """Changing known fields keeps every unknown key, attachment stub and conflict."""
    doc = cm.load(Person, STORED)
    assert doc.address is not None
    doc.name = "Zoe"
    doc.address.city = "new"
    doc.addresses[0].city = "other"
    out = cm.dump(doc)
    assert out["legacy_score"] == 17
    assert out["prefs"] == STORED["prefs"]
    assert out["_attachments"] == STORED["_attachments"]
    assert out["_conflicts"] == ["2-a"]
    assert out["address"]["zip"] == "0150" and out["address"]["extra"] == {"a": [1]}
    assert out["addresses"][0]["geo"]["alt"] == 3
    patched = cm.apply_json_patch(STORED, cm.changes(doc).to_json_patch())
    assert patched == out


def test_unknown_fields_do_not_become_attributes() -> None:
    """Unknown keys live in the state record, not as attributes or in repr/eq."""
    doc = cm.load(Person, STORED)
    assert not hasattr(doc, "legacy_score")
    assert "legacy_score" not in repr(doc)
    plain = cm.load(Person, {k: v for k, v in STORED.items() if k != "legacy_score"})
    assert doc == plain


def test_load_does_not_mutate_the_input() -> None:
    """Loading and editing leaves the decoded JSON untouched."""
    raw = cm.apply_json_patch(STORED, [])
    doc = cm.load(Person, raw)
    doc.tags.append("x")
    doc.meta["k"] = 1
    assert doc.address is not None
    doc.address.city = "y"
    assert raw == STORED


def test_missing_fields_take_their_defaults() -> None:
    """A stored document without a defaulted field loads with the default."""
    doc = cm.load(Person, {"_id": "p", "name": "P"})
    assert (doc.age, doc.tags, doc.address) == (0, [], None)
    assert cm.changes(doc) == []


# --------------------------------------------------------------------------------------
# Assignment validation.


def test_wrong_type_assignment_raises_naming_the_field() -> None:
    """Assigning a str to an int field raises ValidationError with the field path."""
    doc = cm.load(Person, {"_id": "p1", "name": "P"})
    with pytest.raises(cm.ValidationError) as info:
        doc.age = "old"  # type: ignore[assignment]
    assert info.value.doc_id == "p1"
    assert [(e.path, e.expected) for e in info.value.errors] == [("age", "int")]
    assert doc.age == 0
    assert cm.changes(doc) == []


def test_wrong_type_in_constructor_raises() -> None:
    """The constructor validates like assignment does."""
    with pytest.raises(cm.ValidationError, match="tags"):
        Person(name="x", tags="not a list")  # type: ignore[arg-type]


def test_wrong_item_type_names_the_index() -> None:
    """A bad list item is reported with its index."""
    doc = Person(name="x")
    with pytest.raises(cm.ValidationError) as info:
        doc.tags = ["ok", 3]  # type: ignore[list-item]
    assert [e.path for e in info.value.errors] == ["tags[1]"]


def test_wrong_type_inside_embedded_names_the_full_path() -> None:
    """Assigning into an embedded object of a document names the path from the root."""
    doc = cm.load(Person, {"_id": "p1", "name": "P", "address": {"street": "s", "city": "c"}})
    assert doc.address is not None
    with pytest.raises(cm.ValidationError) as info:
        doc.address.city = 5  # type: ignore[assignment]
    assert info.value.doc_id == "p1"
    assert info.value.errors[0].path == "address.city"


def test_wrong_type_appended_to_typed_list_raises() -> None:
    """Tracked typed containers validate their items."""
    doc = Person(name="x")
    with pytest.raises(cm.ValidationError):
        doc.tags.append(5)  # type: ignore[arg-type]
    with pytest.raises(cm.ValidationError):
        doc.addresses.append("not an address")  # type: ignore[arg-type]


def test_non_json_value_in_any_field_raises() -> None:
    """``Any`` fields take JSON only: objects and NaN are refused."""
    doc = Person(name="x")
    with pytest.raises(cm.ValidationError):
        doc.meta = {"k": object()}
    with pytest.raises(cm.ValidationError):
        doc.meta["k"] = float("nan")


def test_bool_is_not_an_int_and_int_is_a_float() -> None:
    """bool is refused for int fields; an int is accepted for a float field."""
    with pytest.raises(cm.ValidationError):
        Person(name="x", age=True)
    geo = Geo(lat=1, lon=2)
    assert cm.dump(Everything(point=geo))["point"] == {"lat": 1, "lon": 2}


def test_embedded_objects_are_attrs_classes_without_id() -> None:
    """Embedded classes have no ``id`` and no discriminator."""
    assert not hasattr(Address, "id")
    assert Address(street="s", city="c") == Address(street="s", city="c")
    assert attrs.has(Address)


def test_invoice_decimal_field() -> None:
    """A Decimal field loads from its string form and dumps back to it."""
    doc = cm.load(Invoice, {"_id": "i", "type": "invoice", "number": 7, "total": "12.30"})
    assert doc.total == Decimal("12.30")
    assert cm.dump(doc)["total"] == "12.30"


def test_meta_conflict_is_checked_when_the_class_is_defined() -> None:
    """An unknown Meta.conflict policy fails at class definition, naming the class."""
    with pytest.raises(ValueError, match=r"Broken\.Meta\.conflict must be one of"):

        class Broken(cm.Document):
            a: int = 0

            class Meta:
                conflict = "merge"


def test_decimal_nan_is_refused_at_assignment() -> None:
    """A NaN decimal could be written but never loaded back, so assignment refuses it."""

    class Priced(cm.Document):
        price: Decimal = Decimal(0)

    doc = Priced()
    with pytest.raises(cm.ValidationError, match="price"):
        doc.price = Decimal("NaN")


def test_bad_embedded_assignment_names_the_document_class() -> None:
    """An error inside an embedded object names the document's class and the full path."""

    class Spot(cm.Embedded):
        city: str

    class Visit(cm.Document):
        spot: Spot | None = None

    visit = cm.load(Visit, {"_id": "v1", "type": "Visit", "spot": {"city": "Oslo"}})
    assert visit.spot is not None
    with pytest.raises(cm.ValidationError) as caught:
        visit.spot.city = 5  # type: ignore[assignment]
    assert str(caught.value).startswith("Visit document 'v1'")
    assert caught.value.errors[0].path == "spot.city"


def test_meta_options_are_checked_when_the_class_is_defined() -> None:
    """A misspelt Meta option, a bare string index or an unknown index field fail early."""
    with pytest.raises(ValueError, match="unknown option"):

        class Typo(cm.Document):
            name: str = ""

            class Meta:
                index: ClassVar[list[Any]] = []

    with pytest.raises(TypeError, match=r"cm\.Index"):

        class Bare(cm.Document):
            name: str = ""

            class Meta:
                indexes: ClassVar[list[Any]] = ["name"]

    with pytest.raises(ValueError, match="no field 'nmae'"):

        class Misspelt(cm.Document):
            name: str = ""

            class Meta:
                indexes: ClassVar[list[Any]] = [cm.Index("nmae")]
