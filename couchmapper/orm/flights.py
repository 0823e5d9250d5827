"""Writes whose answer was lost: what they were, and whether one landed on the server.

A request cut by a network failure may or may not have been applied. The flush keeps each
unanswered write on the object's state as a :class:`Flight` until the object is written; on
the next conflict :func:`after_lost_answer` looks at the document's history to tell whether
one of them is stored, and what is left to send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from couchmapper._types import JSONDict, Obj
from couchmapper.exceptions import NotFoundError
from couchmapper.model.base import state_of
from couchmapper.orm.merge import WriteResult, changes_between, landed
from couchmapper.tracking import Change

__all__ = ["Flight", "LostAnswer", "after_lost_answer", "remember_flight"]


@attrs.frozen
class Flight:
    """A write whose request got no answer: it may or may not be on the server.

    Attributes:
        planned: the document as this session wanted it then (the object's JSON).
        sent: what was sent (``planned``, or a rebase of it on the server's version).
    """

    planned: JSONDict
    sent: JSONDict


@attrs.frozen
class LostAnswer:
    """What to do about a document whose earlier write landed although its answer was lost.

    Exactly one of: ``done`` (written; the object takes ``body``), ``send`` (this JSON goes
    out next), or ``base``/``changes`` (re-apply these edits on the server's version, by the
    conflict policy; ``own``: nobody else wrote since, so it is no conflict at all).
    """

    done: WriteResult | None = None
    body: JSONDict | None = None
    send: JSONDict | None = None
    base: JSONDict | None = None
    changes: list[Change] | None = None
    own: bool = False


def remember_flight(obj: Obj | None, planned: JSONDict, sent: JSONDict) -> None:
    """Keep an unanswered write on the object's state until the object is written."""
    state = state_of(obj) if obj is not None else None
    if state is None:
        return
    flights = list(state.flights or ())
    if Flight(planned, sent) not in flights:
        flights.append(Flight(planned, sent))
    state.flights = flights


Fetch = Callable[..., JSONDict]  # the backend's get, counted: (doc_id, **options) -> JSON


def after_lost_answer(
    obj: Obj | None, doc_id: str, planned: JSONDict, theirs: JSONDict | None, fetch: Fetch
) -> LostAnswer | None:
    """Handle a conflict on a document with unanswered writes (kept on its state).

    None when none of them is on the server (an ordinary conflict). Otherwise what to do now
    that one is known to be stored: nothing is consumed until the object is written, so a
    retry that fails again starts from the same facts.
    """
    state = state_of(obj) if obj is not None else None
    if state is None or not state.flights:
        return None
    found: tuple[Flight, str | None] | None = None
    for flight in reversed(state.flights):
        if flight.sent.get("_deleted"):
            if theirs is None:  # the tombstone is there (or someone else deleted it)
                found = (flight, None)
                break
            continue
        rev = _landed_revision(doc_id, flight.sent, fetch)
        if rev is not None:
            found = (flight, rev)
            break
    if found is None:
        return None
    flight, landed_rev = found
    if flight.sent.get("_deleted"):
        if planned.get("_deleted"):
            return LostAnswer(done=WriteResult(doc_id, None), body=flight.sent)
        # Deleted (that landed), then created again: a create over the tombstone.
        return LostAnswer(send={k: v for k, v in planned.items() if k != "_rev"})
    if theirs is None:
        return None  # deleted by another writer since: the policy decides
    if planned.get("_deleted"):
        if theirs["_rev"] == landed_rev:  # deleting our own landed write
            return LostAnswer(send={"_id": doc_id, "_rev": landed_rev, "_deleted": True})
        return None  # changed by another writer since: the policy decides
    # The server holds that write plus whatever was written after it. What is left to send
    # are this session's edits since the write was planned (never the ones it carried).
    since = changes_between(flight.planned, planned)
    if not since:
        return LostAnswer(done=WriteResult(doc_id, theirs["_rev"]), body=theirs)
    return LostAnswer(base=flight.planned, changes=since, own=theirs["_rev"] == landed_rev)


def _landed_revision(doc_id: str, sent: JSONDict, fetch: Fetch) -> str | None:
    """The revision ``sent`` became on the server, if the document's history shows it.

    The child of the revision ``sent`` named (or the first revision, for a create) must hold
    exactly ``sent``: another writer storing equal content elsewhere in the history does not
    count.
    """
    try:
        current = fetch(doc_id, revs=True)
    except NotFoundError:
        return None
    info: Any = current.get("_revisions") or {}
    start, ids = info.get("start"), info.get("ids")
    if not isinstance(start, int) or not isinstance(ids, list) or not ids:
        return None
    history = [f"{start - index}-{rev_id}" for index, rev_id in enumerate(ids)]  # newest first
    parent = sent.get("_rev")
    if parent is None:
        candidate = history[-1] if history[-1].startswith("1-") else current["_rev"]
    elif parent in history and history.index(parent) > 0:
        candidate = history[history.index(parent) - 1]
    else:
        return None
    if candidate == current["_rev"]:
        body = current
    else:
        try:
            body = fetch(doc_id, rev=candidate)
        except NotFoundError:
            return None  # compacted away: cannot tell
    return candidate if landed(sent, body) else None
