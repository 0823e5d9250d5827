"""What a :class:`~couchmapper.orm.session.Session` accepts as its database."""

from __future__ import annotations

from typing import Any

from couchmapper.backends.base import Backend

__all__ = ["as_backend"]


def as_backend(database: Any) -> Backend:
    """A backend for ``database``: a backend, a python-couchdb ``Database``, a URL or None."""
    # python-couchdb first: probing its Database against the protocol could touch the network.
    if type(database).__module__.split(".")[0] == "couchdb":
        from couchmapper.backends.couchdb import CouchDBBackend

        if type(database).__name__ != "Database":
            msg = (
                f"Session needs a couchdb.Database, not a couchdb {type(database).__name__}; "
                "e.g. Session(couchdb.Server(url)['dbname'])"
            )
            raise TypeError(msg)
        return CouchDBBackend(database)
    if database is None or isinstance(database, str):
        from couchmapper.connect import connect

        return connect(database)
    if isinstance(database, Backend):
        return database
    msg = (
        "Session needs a backend (cm.connect(...)), a couchdb.Database or a database URL, "
        f"not {type(database).__name__}"
    )
    raise TypeError(msg)
