"""Models and helpers shared by the query tests (``test_queries.py``, ``test_query_properties.py``).

Type names are global, so every class here has a ``q-`` prefixed type name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import couchdb
from _server import close_connections

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend
from couchmapper.backends.memory import memory_server


class Address(cm.Embedded):
    """A nested object for dotted paths (``Person.address.city``)."""

    city: str
    zip: str = ""


class Line(cm.Embedded):
    """An item of a list of objects, for ``any(...)`` ($elemMatch)."""

    sku: str
    qty: int = 1


class Person(cm.Document, type_name="q-person"):
    """The base class of the polymorphism tests, with declared indexes and views."""

    name: str
    age: int = 0
    email: str | None = None
    tags: list[str] = cm.field(factory=list)
    address: Address | None = None
    lines: list[Line] = cm.field(factory=list)

    by_name = cm.View(
        map=(
            "function (doc) { if (['q-person', 'q-employee', 'q-manager'].indexOf(doc.type) "
            ">= 0) { emit(doc.name, doc.age); } }"
        ),
        reduce="_sum",
    )
    by_city = cm.View(
        map=(
            "function (doc) { if (doc.address && doc.address.city) "
            "{ emit([doc.address.city, doc.name], 1); } }"
        ),
        reduce="_count",
    )

    class Meta:
        """Indexes for sorted queries."""

        indexes = [cm.Index("age"), cm.Index("name")]


class Employee(Person, type_name="q-employee"):
    """A subclass: found by ``find(Person)``, loaded as an Employee."""

    salary: int = 0


class Manager(Employee, type_name="q-manager"):
    """A subclass of a subclass."""

    reports: int = 0


class Other(cm.Document, type_name="q-other"):
    """An unrelated class that has a ``name`` too."""

    name: str = ""


class Note(cm.Document, type_name="q-note"):
    """Free-form values, for the injection tests."""

    label: str = ""
    data: Any = None


class Item(cm.Document, type_name="q-item"):
    """The small model of the Hypothesis property."""

    n: int = 0
    s: str = ""
    flag: bool = False
    tags: list[str] = cm.field(factory=list)
    opt: int | None = None


def seed_people(backend: Backend) -> None:
    """Store a fixed set of people directly (not through a session)."""
    docs: list[dict[str, Any]] = [
        {"_id": "ann", "type": "q-person", "name": "Ann", "age": 31, "email": "ann@x.org",
         "tags": ["admin", "dev"], "address": {"city": "Oslo", "zip": "0150"},
         "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 5}]},
        {"_id": "bob", "type": "q-person", "name": "Bob", "age": 25, "tags": ["dev"],
         "address": {"city": "Bergen", "zip": "5003"}, "lines": [{"sku": "a", "qty": 2}]},
        {"_id": "cat", "type": "q-employee", "name": "Cat", "age": 42, "email": "cat@x.org",
         "tags": [], "salary": 100, "address": {"city": "Oslo", "zip": "0151"}},
        {"_id": "dan", "type": "q-manager", "name": "Dan", "age": 55, "tags": ["admin"],
         "salary": 200, "reports": 3},
        {"_id": "eve", "type": "q-person", "name": "Eve", "age": 19, "tags": ["ops", "dev"],
         "address": {"city": "Tromsø", "zip": "9008"}},
        {"_id": "zed", "type": "q-other", "name": "Ann"},
    ]  # fmt: skip
    results = backend.bulk_docs(docs)
    assert all(r.get("ok") for r in results), results


def ids(objects: Any) -> list[str]:
    """The ``id`` of each object, in order."""
    return [obj.id for obj in objects]


def find_requests(proxy: Any) -> list[Any]:
    """The ``POST _find`` requests the proxy saw."""
    return [
        r for r in proxy.requests if r.method == "POST" and r.path.split("?")[0].endswith("/_find")
    ]


def partitioned_backend(kind: str, server_url: str | None) -> Iterator[Backend]:
    """A fresh partitioned database: in memory, or on the CouchDB at ``server_url``."""
    name = f"cm-test-part-{uuid.uuid4().hex}"
    if kind == "memory":
        yield memory_server().create(name, partitioned=True)
        memory_server().delete(name)
        return
    assert server_url is not None
    server = couchdb.Server(server_url)
    server.resource.put_json(name, partitioned="true")
    parts = urlsplit(server_url)
    url = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))
    backend = CouchDBBackend.from_url(url, timeout=60)
    try:
        yield backend
    finally:
        backend.close()
        del server[name]
        close_connections(server)


class SharedA(cm.Document, type_name="q-shared-a"):
    """One of two classes whose views share the design document ``q-shared``."""

    x: int = 0

    by_x = cm.View(
        map="function (doc) { if (doc.type === 'q-shared-a') emit(doc.x, null); }",
        design="q-shared",
    )


class SharedB(cm.Document, type_name="q-shared-b"):
    """The other class with a view in ``q-shared``."""

    y: int = 0

    by_y = cm.View(
        map="function (doc) { if (doc.type === 'q-shared-b') emit(doc.y, null); }",
        design="q-shared",
    )
