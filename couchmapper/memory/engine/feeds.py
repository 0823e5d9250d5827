"""The waiting ``_changes`` feeds of the memory engine: ``longpoll`` and ``continuous``.

Both are bounded: they wait for new changes at most ``timeout`` milliseconds (CouchDB's
default, 60 s, when none is given), then end the way CouchDB ends them. :func:`continuous`
returns a continuous feed whole, as the newline-delimited text CouchDB streams;
:func:`stream` yields it piece by piece (what ``couchmapper serve`` sends), and with a
``heartbeat`` it runs until its consumer closes it, one newline per quiet period, as
CouchDB's heartbeat overrides the timeout. :func:`check_since` validates ``since`` the way
CouchDB does before any feed starts.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from couchmapper.exceptions import BackendError
from couchmapper.memory.engine import listing
from couchmapper.memory.engine.revs import format_seq, parse_since

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = ["FEEDS", "check_since", "continuous", "heartbeat", "longpoll", "stream"]

FEEDS = ("normal", "continuous", "live", "longpoll", "eventsource")
_DEFAULT_TIMEOUT_MS = 60000
# CouchDB 3 takes 0, "now", or "N-" and an opaque part it can decode (url-safe base 64 of a
# compressed Erlang term, which starts "g1"); it refuses any other number, "-1", "abc", "00",
# and a cut term such as "0-g1AAAA" (05/changes-bad-params; checked on a 3.5 node). This
# engine's own sequences (format_seq) have that shape; a truncated one is refused too.
_SINCE_RE = re.compile(r"\A(?:0|[0-9]+-g1[A-Za-z0-9_-]{24,})\Z")
_MALFORMED = "Malformed sequence supplied in 'since' parameter."


def check_since(since: Any) -> None:
    """Refuse a ``since`` value CouchDB refuses (400 bad_request, its reason)."""
    if since == "now" or (isinstance(since, int) and not isinstance(since, bool) and since == 0):
        return
    if isinstance(since, str) and _SINCE_RE.match(since):
        return
    raise BackendError(400, "bad_request", _MALFORMED)


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


def heartbeat(options: dict[str, Any]) -> float | None:
    """The ``heartbeat`` option in seconds, checked as CouchDB 3.5 checks it (any feed).

    ``true`` is CouchDB's default period (60 s); a non-number, zero or a negative number
    is 400 ``bad_request`` with CouchDB's reasons (checked on a 3.5 node).
    """
    raw = options.get("heartbeat")
    if raw is None:
        return None
    if raw in ("true", True):
        return _DEFAULT_TIMEOUT_MS / 1000
    try:
        milliseconds = int(raw)
    except (TypeError, ValueError):
        reason = "Invalid heartbeat value. Expecting a positive integer value (in milliseconds)."
        raise BackendError(400, "bad_request", reason) from None
    if milliseconds <= 0:
        reason = "The heartbeat value should be a positive integer (in milliseconds)."
        raise BackendError(400, "bad_request", reason)
    return max(milliseconds, 10) / 1000


def continuous(db: Database, options: dict[str, Any]) -> bytes:
    """``feed=continuous`` (or ``eventsource``): rows as they come, then ``last_seq``.

    The whole feed as one text; any ``heartbeat`` is ignored so that the answer stays bounded
    by ``timeout``.
    """
    bounded = {k: v for k, v in options.items() if k != "heartbeat"}
    return b"".join(stream(db, bounded))


def _rows(result: dict[str, Any], events: bool) -> str:
    out = []
    for row in result["results"]:
        text = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
        out.append(f"data: {text}\nid: {row['seq']}\n\n" if events else f"{text}\n")
    return "".join(out)


def stream(db: Database, options: dict[str, Any]) -> Iterator[bytes]:
    """A continuous (or eventsource) feed as it happens, as an iterator of chunks.

    Without ``heartbeat`` the feed ends after ``timeout`` quiet milliseconds with its
    ``last_seq`` line; with one it yields a newline each quiet period and ends only when
    ``limit`` rows were sent or the consumer closes the iterator. The options are checked
    here, before the first chunk (a bad one raises before any answer is sent).
    """
    beat = heartbeat(options)
    timeout = _timeout(options)
    since = _start(db, options)
    # The first page is read now, so that a bad option (style, filter...) raises here.
    with db.lock:
        first = listing.changes(db, **{**options, "since": since})
        seen = db.seq
    return _chunks(db, options, (beat, timeout), since, (first, seen))


def _chunks(
    db: Database,
    options: dict[str, Any],
    periods: tuple[float | None, float],
    since: int,
    first: tuple[dict[str, Any], int],
) -> Iterator[bytes]:
    beat, timeout = periods
    limit = options.get("limit")
    events = options.get("feed") == "eventsource"
    sent = 0
    pending = 0
    deadline = time.monotonic() + (beat if beat is not None else timeout)
    result, seen = first
    read = True  # the first page was read by stream()
    while True:
        if not read:
            query = {**options, "since": since}
            if limit is not None:
                query["limit"] = limit - sent
            with db.lock:
                result = listing.changes(db, **query)
                seen = db.seq
        read = False
        if result["results"]:
            yield _rows(result, events).encode("utf-8")
        sent += len(result["results"])
        pending = result["pending"]
        since = parse_since(result["last_seq"]) or since
        if limit is not None and sent >= limit:
            break
        if _wait(db, seen, deadline):
            if beat is not None:
                deadline = time.monotonic() + beat
            continue
        if beat is None:
            break
        yield b"\n"
        deadline = time.monotonic() + beat
    if not events:
        last = {"last_seq": format_seq(since), "pending": pending}
        yield (json.dumps(last, separators=(",", ":")) + "\n\n").encode("utf-8")
