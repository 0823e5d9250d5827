"""Queries: typed Mango expressions, indexes, views, paging and read-your-writes (memory backend).

Run: ``python examples/queries.py``
"""

from __future__ import annotations

import couchmapper as cm


class Address(cm.Embedded):
    """Where someone lives."""

    city: str


class Person(cm.Document, type_name="example-person"):
    """A person, with two indexes and a view declared on the class."""

    name: str
    age: int = 0
    tags: list[str] = cm.field(factory=list)
    address: Address | None = None

    by_city = cm.View(
        map="function (doc) { if (doc.address) { emit([doc.address.city, doc.name], 1); } }",
        reduce="_count",
    )

    class Meta:
        """Mango indexes, created by cm.sync_design()."""

        indexes = [cm.Index("age"), cm.Index("name")]


class Employee(Person, type_name="example-employee"):
    """A subclass: find(Person) returns employees too, as Employee objects."""

    salary: int = 0


def main() -> None:
    """Walk through the query API."""
    db = cm.connect()
    print("design:", cm.sync_design(db, Person))  # idempotent: run it at every start
    with cm.Session(db) as s:
        for i, city in enumerate(["Oslo", "Bergen", "Oslo", "Tromsø", "Oslo"]):
            s.add(Person(id=f"p{i}", name=f"P{i}", age=20 + 7 * i, address=Address(city=city)))
        s.add(Employee(id="boss", name="Boss", age=50, tags=["admin"], salary=10))

    s = cm.Session(db)

    # 1. Expressions: comparisons, &, |, ~, nested paths, list operators.
    older = s.find(Person, Person.age > 30, sort=Person.age, limit=3)
    print("older:", [p.name for p in older])
    oslo = s.find(Person, (Person.address.city == "Oslo") & ~(Person.age > 40))
    print("young in Oslo:", sorted(p.name for p in oslo))
    print("admins:", [type(p).__name__ for p in s.find(Person, Person.tags.contains("admin"))])
    print("raw selector:", [p.id for p in s.find(Person, {"age": {"$gte": 48}})])

    # 2. Values are literals: this looks for a name equal to the dict, and finds none.
    print("injection:", s.find(Person, Person.name == {"$gt": ""}))

    # 3. first, count, streaming with bookmark paging.
    youngest = s.first(Person, Person.age > 0, sort=Person.age)
    print("youngest:", youngest.name if youngest else None, "| count:", s.count(Person))
    print("streamed:", sum(1 for _ in s.find_iter(Person, batch=2)), "in pages of 2")

    # 4. Views: rows with identity-mapped docs; reduce with group_level.
    rows = s.view(Person.by_city, startkey=["Oslo"], endkey=["Oslo", {}], reduce=False)
    print("view rows:", [r.id for r in rows])
    print("per city:", {r.key[0]: r.value for r in s.view(Person.by_city, group_level=1)})
    with_docs = s.view(Person.by_city, key=["Bergen", "P1"], include_docs=True, reduce=False)
    assert with_docs[0].doc is s.get(Person, "p1")  # the same object: identity map

    # 5. Read-your-writes: pending changes show up before they are flushed.
    s.add(Person(id="new", name="Newcomer", age=99))
    s.delete(s.get(Person, "p4"))
    print("pending view:", [p.name for p in s.find(Person, Person.age > 40, sort=Person.age)])
    print("view stale?", s.view(Person.by_city, reduce=False).stale)
    s.flush()

    # 6. Errors say what to do.
    try:
        s.find(Person, Person.age > 0, sort=Person.tags)
    except cm.QueryError as exc:
        print("error:", exc)


if __name__ == "__main__":
    main()
