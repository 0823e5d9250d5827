"""Checks of the options shared by several engine queries (partitions, ``keys``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from couchmapper.memory.engine.errors import bad_request, query_parse_error

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = ["check_all_docs_keys", "check_counts", "check_keys_options", "check_partition"]

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


def check_all_docs_keys(options: dict[str, Any]) -> None:
    """``_all_docs`` refuses ``keys`` with a range unless the range is that one key.

    CouchDB 3.5 answers ``keys=["a"]`` with ``key``/``startkey``/``endkey`` all ``"a"`` (and an
    empty ``keys`` with any range), but 400 for two keys or any other bound.
    """
    keys = options.get("keys")
    if not keys:
        return
    bounds = [
        options[n] for n in ("key", "startkey", "start_key", "endkey", "end_key") if n in options
    ]
    single = json.dumps(keys[0]) if isinstance(keys, list) and len(keys) == 1 else None
    if any(json.dumps(bound) != single for bound in bounds):
        raise query_parse_error(_KEYS_CONFLICT)


def check_counts(options: dict[str, Any]) -> None:
    """Check and convert limit/skip/group_level like CouchDB reads them from a query string.

    They travel as text, so CouchDB quotes the bad text in its 400 (``"-1"``, not ``-1``).
    """
    for name in ("limit", "skip", "group_level"):
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            text = value if isinstance(value, str) else json.dumps(value)
            try:
                number = int(text)
            except ValueError:
                reason = f"Invalid value for integer: {json.dumps(text)}"
                raise query_parse_error(reason) from None
        else:
            number, text = value, str(value)
        if number < 0:
            reason = f"Invalid value for positive integer: {json.dumps(text)}"
            raise query_parse_error(reason)
        options[name] = number
