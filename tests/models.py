"""A small model zoo shared by the test suite.

Type names are global (the registry maps them to classes), so tests that need a model should
take it from here rather than declare a look-alike with the same name.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any, Literal

import couchmapper as cm


class Color(enum.Enum):
    """An enum stored as its value."""

    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Priority(enum.IntEnum):
    """An int enum stored as its value."""

    LOW = 1
    HIGH = 2


class Geo(cm.Embedded):
    """A point, nested two levels down in :class:`Person`."""

    lat: float
    lon: float


class Address(cm.Embedded):
    """An embedded object with an embedded object inside."""

    street: str
    city: str
    geo: Geo | None = None


class Person(cm.Document, type_name="person"):
    """The everyday document: scalars, a list, an optional embedded object, raw JSON."""

    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = cm.field(factory=list)
    address: Address | None = None
    addresses: list[Address] = cm.field(factory=list)
    meta: dict[str, Any] = cm.field(factory=dict)
    labels: set[str] = cm.field(factory=set)


class Employee(Person, type_name="employee"):
    """A subclass: loads as itself when asked for a :class:`Person`."""

    salary: Decimal = Decimal(0)
    manager_id: str | None = None


class Manager(Employee, type_name="manager"):
    """Two levels below :class:`Person`."""

    reports: list[str] = cm.field(factory=list)


class Invoice(cm.Document, type_name="invoice"):
    """A document unrelated to :class:`Person`."""

    number: int
    total: Decimal = Decimal("0.00")


class Shape(cm.Document, discriminator="kind", abstract=True):
    """An abstract base with its own discriminator key (``kind``)."""

    label: str = ""


class Circle(Shape, type_name="circle"):
    """A concrete shape."""

    radius: float = 1.0


class Square(Shape, type_name="square"):
    """Another concrete shape."""

    side: float = 1.0


class Note(cm.Document, discriminator=None):
    """A document without a type discriminator (no polymorphic loading)."""

    text: str = ""


class Everything(cm.Document, type_name="everything"):
    """One field of every supported type, each with a default so ``Everything()`` works."""

    s: str = ""
    i: int = 0
    f: float = 0.0
    b: bool = False
    none: None = None
    opt: int | None = None
    union: int | str = 0
    lit: Literal["a", "b", 3] = "a"
    color: Color = Color.RED
    prio: Priority = Priority.LOW
    when: dt.datetime = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    naive: dt.datetime = dt.datetime(2024, 1, 2, 3, 4, 5)
    day: dt.date = dt.date(2024, 1, 2)
    clock: dt.time = dt.time(3, 4, 5)
    money: Decimal = Decimal("1.50")
    uid: uuid.UUID = uuid.UUID(int=1)
    blob: bytes = b""
    ints: list[int] = cm.field(factory=list)
    names: set[str] = cm.field(factory=set)
    frozen: frozenset[int] = frozenset()
    pair: tuple[int, str] = (0, "")
    many: tuple[float, ...] = ()
    scores: dict[str, float] = cm.field(factory=dict)
    nested: dict[str, list[dict[str, int]]] = cm.field(factory=dict)
    matrix: list[list[int]] = cm.field(factory=list)
    days: list[dt.date] = cm.field(factory=list)
    point: Geo | None = None
    points: list[Geo] = cm.field(factory=list)
    by_name: dict[str, Address] = cm.field(factory=dict)
    raw: Any = None
