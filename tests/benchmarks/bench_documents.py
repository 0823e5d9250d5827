"""Tracked field sets and document loading, side by side with their peers.

* a tracked field set on a persistent loaded document vs a plain attrs instance vs an
  SQLAlchemy 2 ORM instrumented attribute on a persistent object;
* a nested embedded set (``doc.address.city = x``) against our own top-level scalar set;
* a tracked list append (``doc.tags.append(x)``) vs SQLAlchemy's ``MutableList.append`` on a
  persistent object (a JSON column);
* loading 10,000 decoded JSON documents with ``cm.load`` vs pydantic v2 ``model_validate``
  vs plain cattrs ``structure`` (fresh converter, plain attrs class) vs python-couchdb's
  ``couchdb.mapping.Document.wrap``.

Timings are best-of-N (``timeit.repeat``, min) to resist noise from a shared machine; compare
the ratios within one run. Targets: tracked set <= 0.4x SQLAlchemy; nested set <= 2x our
scalar set; list append <= 0.3x SQLAlchemy; loading <= 1.0x pydantic.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
import pydantic
import sqlalchemy as sa
from couchdb import mapping
from sqlalchemy import orm
from sqlalchemy.ext.mutable import MutableList

import couchmapper as cm

from ._report import ratio

SET_TARGET = 0.4
NESTED_TARGET = 2.0
APPEND_TARGET = 0.3
APPENDS = 100  # appends per fresh list (setup outside the timer)
LOAD_TARGET = 1.0
DOCS = 10_000


# --------------------------------------------------------------------------------------
# The models: one realistic document in each library.


class BenchAddress(cm.Embedded):
    """Embedded address."""

    street: str
    city: str


class BenchPerson(cm.Document, type_name="bench-person"):
    """Seven fields: scalars, a list[str], an optional str, an embedded object."""

    name: str
    age: int = 0
    email: str | None = None
    active: bool = True
    score: float = 0.0
    tags: list[str] = cm.field(factory=list)
    address: BenchAddress | None = None


@attrs.define
class PlainAddress:
    """Plain attrs twin of BenchAddress."""

    street: str
    city: str


@attrs.define
class PlainPerson:
    """Plain attrs twin of BenchPerson."""

    name: str
    age: int = 0
    email: str | None = None
    active: bool = True
    score: float = 0.0
    tags: list[str] = attrs.field(factory=list)
    address: PlainAddress | None = None
    _id: str | None = None
    _rev: str | None = None
    type: str | None = None


class PydAddress(pydantic.BaseModel):
    """pydantic twin of BenchAddress."""

    street: str
    city: str


class PydPerson(pydantic.BaseModel):
    """pydantic twin of BenchPerson (``_id``/``_rev`` via aliases)."""

    model_config = pydantic.ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = pydantic.Field(default=None, alias="_id")
    rev: str | None = pydantic.Field(default=None, alias="_rev")
    name: str
    age: int = 0
    email: str | None = None
    active: bool = True
    score: float = 0.0
    tags: list[str] = pydantic.Field(default_factory=list)
    address: PydAddress | None = None


class CouchPerson(mapping.Document):  # type: ignore[misc]
    """python-couchdb mapping twin of BenchPerson."""

    name = mapping.TextField()
    age = mapping.IntegerField(default=0)
    email = mapping.TextField()
    active = mapping.BooleanField(default=True)
    score = mapping.FloatField(default=0.0)
    tags = mapping.ListField(mapping.TextField())
    address = mapping.DictField(
        mapping.Mapping.build(street=mapping.TextField(), city=mapping.TextField())
    )


class Base(orm.DeclarativeBase):
    """SQLAlchemy declarative base."""


class SqlPerson(Base):
    """SQLAlchemy twin (scalar columns only: the set benchmark touches ``age``)."""

    __tablename__ = "person"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str]
    age: orm.Mapped[int]


class SqlTagged(Base):
    """SQLAlchemy row with a tracked JSON list (``MutableList``), for the append benchmark."""

    __tablename__ = "tagged"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    tags: orm.Mapped[list[str]] = orm.mapped_column(MutableList.as_mutable(sa.JSON))


def raw_document(n: int) -> dict[str, Any]:
    """The decoded JSON of one stored document."""
    return {
        "_id": f"person-{n:06d}",
        "_rev": "1-967a00dff5e02add41819138abb3284d",
        "type": "bench-person",
        "name": f"Person {n}",
        "age": n % 90,
        "email": f"p{n}@example.org" if n % 3 else None,
        "active": n % 2 == 0,
        "score": n / 7,
        "tags": ["alpha", "beta", "gamma"][: n % 4],
        "address": {"street": f"Main {n}", "city": "Oslo"},
    }


# --------------------------------------------------------------------------------------
# Measuring.


def best(stmt: Callable[[], object], number: int, repeat: int) -> float:
    """Seconds per call: the minimum over ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number


def bench_sets(number: int = 200_000, repeat: int = 7) -> dict[str, float]:
    """Seconds per field set (two sets per call, alternating values, halved)."""
    ours = cm.load(BenchPerson, raw_document(1), status=cm.Lifecycle.PERSISTENT)
    plain = PlainPerson(name="x")

    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = orm.Session(engine)
    session.add(SqlPerson(id=1, name="x", age=1))
    session.commit()
    row = session.get(SqlPerson, 1)
    assert row is not None

    def set_ours() -> None:
        ours.age = 5
        ours.age = 6

    def set_plain() -> None:
        plain.age = 5
        plain.age = 6

    def set_sqlalchemy() -> None:
        row.age = 5
        row.age = 6

    results = {
        "couchmapper": best(set_ours, number, repeat) / 2,
        "attrs (plain)": best(set_plain, number, repeat) / 2,
        "SQLAlchemy 2 ORM": best(set_sqlalchemy, number, repeat) / 2,
    }
    session.close()
    engine.dispose()
    return results


def bench_nested(number: int = 2_000, repeat: int = 300) -> dict[str, float]:
    """Seconds per nested embedded set vs our own top-level scalar set, on one object.

    Many short runs, the two interleaved, the best of each: on a shared machine a short run
    is likelier to go undisturbed, and both see the same phases of the machine's load.
    """
    ours = cm.load(BenchPerson, raw_document(1), status=cm.Lifecycle.PERSISTENT)
    address = ours.address
    assert address is not None

    def set_nested() -> None:
        address.city = "Bergen"
        address.city = "Oslo"

    def set_scalar() -> None:
        ours.age = 5
        ours.age = 6

    nested, scalar = float("inf"), float("inf")
    for _ in range(repeat):
        nested = min(nested, best(set_nested, number, 1))
        scalar = min(scalar, best(set_scalar, number, 1))
    results = {"nested doc.address.city = x": nested / 2, "scalar doc.age = x": scalar / 2}
    address.city = "Bergen"  # sanity: the nested sets were tracked at their full path
    assert ("address", "city") in [c.path for c in cm.changes(ours)], cm.changes(ours)
    return results


def _best_batches(start: Callable[[], Callable[[str], object]], repeat: int) -> float:
    """Seconds per append: the best of ``repeat`` batches of APPENDS onto a fresh list."""
    best_time = float("inf")
    values = [f"t{i}" for i in range(APPENDS)]
    for _ in range(repeat):
        append = start()  # setup, untimed
        began = time.perf_counter()
        for value in values:
            append(value)
        best_time = min(best_time, time.perf_counter() - began)
    return best_time / APPENDS


def bench_appends(repeat: int = 300) -> dict[str, float]:
    """Seconds per tracked list append: ours vs SQLAlchemy's MutableList (persistent rows)."""
    raw = raw_document(3)

    def ours() -> Callable[[str], object]:
        doc = cm.load(BenchPerson, raw, status=cm.Lifecycle.PERSISTENT)
        return doc.tags.append

    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = orm.Session(engine, expire_on_commit=False)
    row = SqlTagged(id=1, tags=["alpha", "beta", "gamma"])
    session.add(row)
    session.commit()

    def sqlalchemy() -> Callable[[str], object]:
        row.tags = MutableList(["alpha", "beta", "gamma"])
        session.commit()
        return row.tags.append

    results = {
        "couchmapper doc.tags.append": _best_batches(ours, repeat),
        "SQLAlchemy MutableList.append": _best_batches(sqlalchemy, repeat),
    }
    assert len(row.tags) == 3 + APPENDS and session.is_modified(row)
    session.close()
    engine.dispose()
    return results


def bench_loads(repeat: int = 7) -> dict[str, float]:
    """Seconds to load DOCS decoded documents into objects."""
    docs = [raw_document(n) for n in range(DOCS)]
    converter = cattrs.Converter()
    load = cm.load
    validate = PydPerson.model_validate
    structure = converter.structure
    wrap = CouchPerson.wrap

    # Sanity: every contender reads the same values.
    assert load(BenchPerson, docs[5]).tags == validate(docs[5]).tags
    assert structure(docs[5], PlainPerson).tags == list(wrap(docs[5]).tags)

    return {
        "couchmapper cm.load": best(lambda: [load(BenchPerson, d) for d in docs], 1, repeat),
        "pydantic v2 model_validate": best(lambda: [validate(d) for d in docs], 1, repeat),
        "cattrs structure (attrs)": best(
            lambda: [structure(d, PlainPerson) for d in docs], 1, repeat
        ),
        "couchdb.mapping wrap": best(lambda: [wrap(d) for d in docs], 1, repeat),
    }


def report(title: str, results: dict[str, float], unit: str, scale: float) -> None:
    """Print one table."""
    print(title)
    for name, seconds in results.items():
        print(f"  {name:<30} {seconds * scale:10.2f} {unit}")


def main() -> None:
    """Run both benchmarks and print the ratios against the targets."""
    sets = bench_sets()
    report("Field set on a persistent object (per set):", sets, "ns", 1e9)
    set_ratio = sets["couchmapper"] / sets["SQLAlchemy 2 ORM"]
    print(
        f"  ours/SQLAlchemy = {set_ratio:.2f}x  (target <= {SET_TARGET}x: "
        f"{'met' if set_ratio <= SET_TARGET else 'NOT met'})"
    )
    print(f"  ours/attrs      = {sets['couchmapper'] / sets['attrs (plain)']:.2f}x")
    print()
    nested = bench_nested()
    report("Nested embedded set vs top-level scalar set (per set):", nested, "ns", 1e9)
    nested_ratio = nested["nested doc.address.city = x"] / nested["scalar doc.age = x"]
    print(
        f"  nested/scalar   = {nested_ratio:.2f}x  (target <= {NESTED_TARGET}x: "
        f"{'met' if nested_ratio <= NESTED_TARGET else 'NOT met'})"
    )
    versus_sqlalchemy = nested["nested doc.address.city = x"] / sets["SQLAlchemy 2 ORM"]
    print(f"  nested/SQLAlchemy scalar set = {versus_sqlalchemy:.2f}x")
    print()
    appends = bench_appends()
    report(f"Tracked list append (per append, best batch of {APPENDS}):", appends, "ns", 1e9)
    append_ratio = appends["couchmapper doc.tags.append"] / appends["SQLAlchemy MutableList.append"]
    print(
        f"  ours/SQLAlchemy = {append_ratio:.2f}x  (target <= {APPEND_TARGET}x: "
        f"{'met' if append_ratio <= APPEND_TARGET else 'NOT met'})"
    )
    print()
    loads = bench_loads()
    report(f"Load {DOCS:,} decoded documents:", loads, "ms", 1e3)
    load_ratio = loads["couchmapper cm.load"] / loads["pydantic v2 model_validate"]
    print(
        f"  ours/pydantic   = {load_ratio:.2f}x  (target <= {LOAD_TARGET}x: "
        f"{'met' if load_ratio <= LOAD_TARGET else 'NOT met'})"
    )
    cattrs_ratio = loads["couchmapper cm.load"] / loads["cattrs structure (attrs)"]
    print(f"  ours/cattrs     = {cattrs_ratio:.2f}x")
    couch_ratio = loads["couchmapper cm.load"] / loads["couchdb.mapping wrap"]
    print(f"  ours/couchdb    = {couch_ratio:.2f}x")
    ours_set, ours_load = sets["couchmapper"], loads["couchmapper cm.load"]
    ratio(
        "documents",
        "field set",
        ours_set,
        "SQLAlchemy 2 ORM",
        sets["SQLAlchemy 2 ORM"],
        goal=SET_TARGET,
    )
    ratio("documents", "field set", ours_set, "plain attrs", sets["attrs (plain)"])
    for peer, goal in (
        ("pydantic v2 model_validate", LOAD_TARGET),
        ("cattrs structure (attrs)", None),
    ):
        ratio("documents", f"load {DOCS:,} documents", ours_load, peer, loads[peer], goal=goal)
    ratio(
        "documents",
        f"load {DOCS:,} documents",
        ours_load,
        "python-couchdb mapping",
        loads["couchdb.mapping wrap"],
    )
    scalar = nested["scalar doc.age = x"]
    nested_set = nested["nested doc.address.city = x"]
    ratio("documents", "nested set", nested_set, "our scalar set", scalar, goal=NESTED_TARGET)
    ours_append = appends["couchmapper doc.tags.append"]
    peer_append = appends["SQLAlchemy MutableList.append"]
    ratio(
        "documents",
        "list append",
        ours_append,
        "SQLAlchemy MutableList",
        peer_append,
        goal=APPEND_TARGET,
    )


if __name__ == "__main__":
    main()
