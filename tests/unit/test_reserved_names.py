"""Field names a document class may not declare: the discriminator, CouchDB's ``_`` names, ours.

A field named like the discriminator silently replaced it (a stored ``type: "admin"`` then
loaded as another class); ``_``-names are refused by CouchDB; ``id``, ``rev`` and the
``_cm_`` names are the bookkeeping of the base classes (issue 11, item 5).
"""

from __future__ import annotations

from typing import Any

import pytest

import couchmapper as cm


def test_a_field_named_like_the_default_discriminator_is_refused() -> None:
    """``type: str`` on a polymorphic class is refused, naming the field and two ways out."""
    with pytest.raises(TypeError) as caught:

        class Account(cm.Document, type_name="reserved-account"):
            """Declares the discriminator as a field."""

            type: str = "user"

    message = str(caught.value)
    assert "Account.type" in message
    assert "discriminator" in message
    assert 'discriminator="' in message  # the class option that moves the type name
    assert "rename" in message


def test_a_field_named_like_a_custom_discriminator_is_refused() -> None:
    """With ``discriminator="kind"``, a field ``kind`` is refused; ``type`` is then allowed."""
    with pytest.raises(TypeError, match=r"Thing\.kind"):

        class Thing(cm.Document, type_name="reserved-thing", discriminator="kind"):
            """Declares its discriminator as a field."""

            kind: str = ""

    class Shelf(cm.Document, type_name="reserved-shelf", discriminator="kind"):
        """``type`` is an ordinary field once the discriminator is elsewhere."""

        type: str = "oak"

    shelf = Shelf(type="pine", id="s")
    assert cm.dump(shelf) == {"_id": "s", "kind": "reserved-shelf", "type": "pine"}
    assert cm.load(Shelf, {"_id": "s", "kind": "reserved-shelf", "type": "ash"}).type == "ash"


def test_a_subclass_cannot_declare_the_inherited_discriminator() -> None:
    """The discriminator is inherited, and so is the ban: the type-confusion case."""

    class Member(cm.Document, type_name="reserved-member"):
        """A base class of a hierarchy."""

        name: str = ""

    with pytest.raises(TypeError, match=r"Admin\.type"):

        class Admin(Member, type_name="reserved-admin"):
            """Would store its own ``type`` over the type name."""

            type: str = "admin"


def test_a_field_is_allowed_to_be_named_type_without_a_discriminator() -> None:
    """``discriminator=None`` turns polymorphic loading off: ``type`` is then a field."""

    class Plain(cm.Document, discriminator=None):
        """No discriminator at all."""

        type: str = ""

    assert cm.dump(Plain(type="t", id="p")) == {"_id": "p", "type": "t"}


@pytest.mark.parametrize(
    "name", ["_id", "_rev", "_attachments", "_conflicts", "_deleted", "_revisions", "_other"]
)
def test_underscore_names_are_refused_on_documents(name: str) -> None:
    """Top-level ``_`` names belong to CouchDB (it refuses unknown ones): refused at once."""
    namespace: dict[str, Any] = {"__annotations__": {name: "int"}, name: 0}
    with pytest.raises(TypeError) as caught:
        type("Underscored", (cm.Document,), namespace)
    assert f"Underscored.{name}" in str(caught.value)
    assert "CouchDB" in str(caught.value)


@pytest.mark.parametrize("name", ["id", "rev"])
def test_the_base_class_attributes_are_refused(name: str) -> None:
    """``id`` and ``rev`` are the document's own; a field of that name would replace them."""
    namespace: dict[str, Any] = {"__annotations__": {name: "str"}, name: ""}
    with pytest.raises(TypeError) as caught:
        type("Shadowing", (cm.Document,), namespace)
    assert f"Shadowing.{name}" in str(caught.value)
    assert "reserved" in str(caught.value)


@pytest.mark.parametrize("base", [cm.Document, cm.Embedded])
def test_bookkeeping_names_are_refused(base: type) -> None:
    """``_cm_`` names hold the session's bookkeeping in ``__dict__`` (documents and embedded)."""
    namespace: dict[str, Any] = {"__annotations__": {"_cm_state": "int"}, "_cm_state": 0}
    with pytest.raises(TypeError, match=r"Booked\._cm_state"):
        type("Booked", (base,), namespace)


def test_embedded_objects_may_use_id_and_underscore_names() -> None:
    """Inside a document CouchDB reserves nothing: an Embedded may have ``id`` and ``type``."""

    class Part(cm.Embedded):
        """A nested object with names a document could not use."""

        id: str = ""
        type: str = ""

    class Machine(cm.Document, type_name="reserved-machine"):
        """Holds a part."""

        part: Part | None = None

    machine = Machine(part=Part(id="p1", type="bolt"), id="m")
    assert cm.dump(machine)["part"] == {"id": "p1", "type": "bolt"}


def test_a_refused_class_does_not_take_its_type_name() -> None:
    """The refusal comes before registration: the type name stays free for a fixed class."""
    with pytest.raises(TypeError):

        class Ticket(cm.Document, type_name="reserved-ticket"):
            """First attempt, refused."""

            type: str = ""

    class Ticket2(cm.Document, type_name="reserved-ticket"):
        """The corrected class."""

        kind: str = ""

    assert type(cm.load(Ticket2, {"_id": "t", "type": "reserved-ticket"})) is Ticket2
