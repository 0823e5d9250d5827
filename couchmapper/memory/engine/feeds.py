"""The waiting ``_changes`` feeds of the memory engine: ``longpoll`` and ``continuous``.

Both are bounded: they wait for new changes at most ``timeout`` milliseconds (CouchDB's
default, 60 s, when none is given), then end the way CouchDB ends them. A continuous feed is
returned whole, as the newline-delimited text CouchDB streams.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from couchmapper.exceptions import BackendError
from couchmapper.memory.engine import listing
from couchmapper.memory.engine.revs import format_seq, parse_since

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = ["FEEDS", "continuous", "longpoll"]

FEEDS = ("normal", "continuous", "live", "longpoll", "eventsource")
_DEFAULT_TIMEOUT_MS = 60000


def _timeout(options: dict[str, Any]) -> float:
    """The ``timeout`` option in seconds (CouchDB's 500 ``badarg`` for a non-number)."""
    raw = options.get("timeout", _DEFAULT_TIMEOUT_MS)
    try:
        milliseconds = int(raw)
    except (TypeError, ValueError):
        raise BackendError(500, "unknown_error", "badarg") from None
    return max(milliseconds, 0) / 1000


def _start(db: Database, options: dict[str, Any]) -> int:
    since = parse_since(options.get("since", 0))
    with db.lock:
        return db.seq if since is None else since


def _wait(db: Database, seen: int, deadline: float) -> bool:
    """Wait until the db has a sequence past ``seen``; False when the deadline passed first."""
    with db.changed:
        while db.seq <= seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            db.changed.wait(remaining)
        return True


def longpoll(db: Database, options: dict[str, Any]) -> dict[str, Any]:
    """``feed=longpoll``: the normal answer, but wait for a first passing change."""
    deadline = time.monotonic() + _timeout(options)
    since = _start(db, options)
    query = {**options, "since": since}
    result = listing.changes(db, **query)
    seen = since
    while not result["results"] and _wait(db, seen, deadline):
        with db.lock:
            seen = db.seq
            result = listing.changes(db, **query)
    return result


def continuous(db: Database, options: dict[str, Any]) -> bytes:
    """``feed=continuous`` (or ``eventsource``): rows as they come, then ``last_seq``."""
    deadline = time.monotonic() + _timeout(options)
    since = _start(db, options)
    limit = options.get("limit")
    events = options.get("feed") == "eventsource"
    out: list[str] = []
    sent = 0
    pending = 0
    while True:
        query = {**options, "since": since}
        if limit is not None:
            query["limit"] = limit - sent
        with db.lock:
            result = listing.changes(db, **query)
            seen = db.seq
        for row in result["results"]:
            text = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
            out.append(f"data: {text}\nid: {row['seq']}\n\n" if events else f"{text}\n")
        sent += len(result["results"])
        pending = result["pending"]
        since = parse_since(result["last_seq"]) or since
        if (limit is not None and sent >= limit) or not _wait(db, seen, deadline):
            break
    if not events:
        last = {"last_seq": format_seq(since), "pending": pending}
        out.append(json.dumps(last, separators=(",", ":")) + "\n\n")
    return "".join(out).encode("utf-8")
