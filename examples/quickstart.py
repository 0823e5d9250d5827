"""couchmapper in one screen: typed documents, a session, one request per flush.

Runs on the embedded in-memory CouchDB by default; set COUCHDB_URL (e.g.
``http://admin:pw@127.0.0.1:5984``) to run it against a real server.
"""

from __future__ import annotations

import os
import uuid

import couchmapper as cm


class Address(cm.Embedded):
    street: str
    city: str


class Person(cm.Document):
    name: str
    age: int = 0
    tags: list[str] = cm.field(factory=list)
    address: Address | None = None


def main() -> None:
    """Create, change and delete documents, printing what each flush wrote."""
    server = os.environ.get("COUCHDB_URL")
    db = cm.connect(f"{server.rstrip('/')}/quickstart-{uuid.uuid4().hex[:8]}" if server else None)

    with cm.Session(db) as s:  # a clean exit flushes
        s.add(Person(name="Ann", id="ann", age=31))
        s.add(Person(name="Bob", id="bob", age=45))
        s.add(Person(name="Carl", id="carl"))

    with cm.Session(db) as s:
        bob = s.get(Person, "bob")
        assert bob is not None and bob is s.get(Person, "bob")  # identity map
        bob.age += 1
        bob.tags.append("admin")
        bob.address = Address(street="Main 1", city="Oslo")
        bob.address.city = "Bergen"
        print("changes:", cm.changes(bob).to_json_patch())
        s.delete(s.get(Person, "carl"))
        results = s.flush()  # one POST /_bulk_docs with both documents
        print("written:", [(r.doc_id, r.rev) for r in results])

    with cm.Session(db) as s:
        bob = s.get(Person, "bob")
        print("stored:", cm.dump(bob))
        print("carl is gone:", s.get(Person, "carl") is None)


if __name__ == "__main__":
    main()
