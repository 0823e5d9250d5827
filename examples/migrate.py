"""A schema migration: ``Person`` version 1 documents upgraded to version 3, then paged.

Version 1 stored ``name`` and ``mail``; version 2 split ``name`` into ``first`` and ``last``;
version 3 renamed ``mail`` to ``email``. The database is filled with version-1 documents,
the bulk migration upgrades them batch by batch (a receiver counts the upgrades as it would
any change), an interrupted run is resumed from its checkpoint, and the result is read back
with stateless paging, as a web API would.

Run: ``python examples/migrate.py`` (embedded in-memory database), or point it at a server:
``COUCHDB_URL=http://admin:pw@127.0.0.1:5984 python examples/migrate.py``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.migrate import migrate


class Person(cm.Document, type_name="example-person"):
    """A person, schema version 3."""

    first: str = ""
    last: str = ""
    email: str = ""

    class Meta:
        version = 3
        indexes = [cm.Index("last")]

    @cm.upgrade(1)
    def split_name(doc: dict[str, Any]) -> None:
        """1 -> 2: ``name`` becomes ``first`` and ``last``."""
        doc["first"], _, doc["last"] = doc.pop("name", "").partition(" ")

    @cm.upgrade(2)
    def rename_mail(doc: dict[str, Any]) -> None:
        """2 -> 3: ``mail`` becomes ``email``."""
        doc["email"] = doc.pop("mail", "")


class Stop(Exception):
    """Stops the first run midway, as a crash or Ctrl-C would."""


def open_database() -> Backend:
    """A fresh database: on COUCHDB_URL's server if set, else in memory."""
    server = os.environ.get("COUCHDB_URL", "").rstrip("/")
    name = f"example-migrate-{uuid.uuid4().hex[:8]}"
    return cm.connect(f"{server}/{name}" if server else f"memory://{name}")


def main() -> None:
    """Fill, migrate (interrupted, then resumed), and page through the result."""
    db = open_database()
    db.bulk_docs(
        [
            {
                "_id": f"p{n:04d}",
                "type": "example-person",
                "name": f"Ann{n} Lee{n % 7}",
                "mail": f"ann{n}@example.org",
            }
            for n in range(1200)
        ]
    )
    upgrades = []

    def count_upgrades(sender: type, **kwargs: Any) -> None:
        upgrades.append(kwargs["document"].id)

    def stop_after_two_batches(done: int, total: int) -> None:
        print(f"  {done}/{total} documents")
        if done >= 1000:
            raise Stop

    with signals.document_changed.connected_to(count_upgrades, sender=Person):
        try:
            migrate(db, [Person], batch=500, progress=stop_after_two_batches)
        except Stop:
            print("first run stopped after two batches")
        report = migrate(db, [Person], batch=500)
    print(report.summary())
    print(f"upgrades seen by the receiver: {len(upgrades)}")

    cm.sync_design(db, Person)
    token, pages = None, 0
    while True:
        with cm.Session(db, page_key=b"example key") as session:
            page = session.find_page(Person, sort=Person.last, limit=400, page_token=token)
        pages += 1
        token = page.next_token
        if token is None:
            break
    first = db.get("p0042")
    print(f"{pages} pages; p0042 is now {first['first']} {first['last']} <{first['email']}>")


if __name__ == "__main__":
    main()
