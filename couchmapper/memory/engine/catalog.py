"""The set of databases of one in-memory server: create, open, delete, list, uuids.

The server-level half of the engine (``PUT /{db}``, ``DELETE /{db}``, ``_all_dbs``,
``_dbs_info``, ``_uuids``); it hands out :class:`~couchmapper.memory.engine.store.Database`
objects. The Backend adapter (:class:`~couchmapper.memory.MemoryServer`) and the HTTP facade
both sit on a catalog; :func:`default_catalog` is the process-wide one.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from typing import Any

from couchmapper.exceptions import BackendError, NotFoundError, PreconditionFailed
from couchmapper.memory.engine.store import Database

__all__ = ["Catalog", "check_db_name", "default_catalog"]

_DB_NAME_RE = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
_SYSTEM_DBS = ("_users", "_replicator", "_global_changes")
_MAX_DB_NAME = 238


def check_db_name(name: str) -> None:
    """Raise CouchDB's 400 for an illegal database name."""
    if len(name) > _MAX_DB_NAME:
        reason = f"At least one path segment of `{name}` is too long."
        raise BackendError(400, "database_name_too_long", reason)
    if name in _SYSTEM_DBS or _DB_NAME_RE.match(name):
        return
    reason = (
        f"Name: '{name}'. Only lowercase characters (a-z), digits (0-9), and any of the "
        "characters _, $, (, ), +, -, and / are allowed. Must begin with a letter."
    )
    raise BackendError(400, "illegal_database_name", reason)


class Catalog:
    """The databases of one server, by name, behind one lock."""

    def __init__(self, *, uuid_prefix: str | None = None) -> None:
        self._lock = threading.Lock()
        self._dbs: dict[str, Database] = {}
        # A fixed prefix makes generated ids reproducible (tests, transcript replays).
        self._uuid_prefix = uuid_prefix or os.urandom(13).hex()
        self._uuid_counter = int.from_bytes(os.urandom(2), "big")

    def create(self, name: str, *, partitioned: bool = False, q: int = 2, n: int = 1) -> Database:
        """``PUT /{db}``: 412 ``file_exists`` when it exists, 400 for an illegal name."""
        if not isinstance(name, str):
            msg = f"a database name must be a str, not {type(name).__name__}"
            raise TypeError(msg)
        check_db_name(name)
        with self._lock:
            if name in self._dbs:
                raise PreconditionFailed(
                    "file_exists", "The database could not be created, the file already exists."
                )
            database = self._dbs[name] = Database(name, partitioned=partitioned, q=q, n=n)
        return database

    def open(self, name: str) -> Database:
        """The database called ``name``; 404 "Database does not exist." when missing."""
        with self._lock:
            found = self._dbs.get(name)
        if found is None:
            raise NotFoundError("not_found", "Database does not exist.")
        return found

    def delete(self, name: str) -> None:
        """``DELETE /{db}``: the data is gone, and every handle to it answers 404 from now on."""
        with self._lock:
            found = self._dbs.pop(name, None)
            if found is None:
                raise NotFoundError("not_found", "Database does not exist.")
        with found.lock:
            found.deleted = True
            found.changed.notify_all()

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._dbs

    def all_dbs(self, **options: Any) -> list[str]:
        """``GET /_all_dbs`` with startkey/endkey/limit/skip/descending."""
        with self._lock:
            names = sorted(self._dbs)
        start = options.get("startkey", options.get("start_key"))
        end = options.get("endkey", options.get("end_key"))
        if options.get("descending"):
            names.reverse()
            names = [n for n in names if (start is None or n <= start)]
            names = [n for n in names if (end is None or n >= end)]
        else:
            names = [n for n in names if (start is None or n >= start)]
            names = [n for n in names if (end is None or n <= end)]
        skip = int(options.get("skip", 0))
        limit = options.get("limit")
        names = names[skip:]
        return names if limit is None else names[: int(limit)]

    def dbs_info(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """``POST /_dbs_info``."""
        out: list[dict[str, Any]] = []
        for key in keys:
            try:
                out.append({"key": key, "info": self.open(key).info()})
            except NotFoundError:
                out.append({"key": key, "error": "not_found"})
        return out

    def uuids(self, count: int = 1) -> list[str]:
        """Server ids like CouchDB's sequential algorithm: a shared prefix, a growing tail."""
        out = []
        with self._lock:
            for _ in range(count):
                self._uuid_counter += 1 + int.from_bytes(os.urandom(1), "big") % 64
                if self._uuid_counter >= 0xFFFFFF:
                    self._uuid_prefix = os.urandom(13).hex()
                    self._uuid_counter = 0
                out.append(f"{self._uuid_prefix}{self._uuid_counter:06x}")
        return out


_default_catalog: Catalog | None = None
_default_lock = threading.Lock()


def default_catalog() -> Catalog:
    """The process-wide catalog behind ``memory://`` URLs, ``cm.connect()`` and ``MemoryHTTP()``."""
    global _default_catalog
    with _default_lock:
        if _default_catalog is None:
            _default_catalog = Catalog()
        return _default_catalog
