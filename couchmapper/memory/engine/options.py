"""Checks of the options shared by several engine queries (partitions, ``keys``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from couchmapper.memory.engine.errors import bad_request, query_parse_error

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = ["check_keys_options", "check_partition"]

_KEYS_CONFLICT = "`keys` is incompatible with `key`, `start_key` and `end_key`"


def check_partition(db: Database, partition: Any) -> str:
    """A partition name for a partition-scoped request, with CouchDB's 400s."""
    if not db.partitioned:
        raise bad_request("database is not partitioned")
    if not isinstance(partition, str) or partition == "":
        raise bad_request("Partition must not be empty", "illegal_partition")
    if partition.startswith("_"):
        raise bad_request("Partition must not start with an underscore", "illegal_partition")
    return partition


def check_keys_options(options: dict[str, Any]) -> None:
    """Refuse ``keys`` together with ``key``/``startkey``/``endkey`` like CouchDB."""
    if options.get("keys") is None:
        return
    for name in ("key", "startkey", "start_key", "endkey", "end_key"):
        if name in options:
            raise query_parse_error(_KEYS_CONFLICT)
