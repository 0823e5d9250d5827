"""What a session counts: flushes and requests (and the public :class:`SessionStats`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from couchmapper.orm.guard import ThreadGuard

__all__ = ["SessionStats", "Traffic"]


@attrs.frozen
class SessionStats:
    """Counts describing a session (see :meth:`Session.stats`).

    ``accepted`` counts documents written with CouchDB's ``"accepted": true`` (HTTP 202:
    stored on fewer copies than the cluster's write quorum); they are written, not failed.
    """

    identity_map: int
    new: int
    dirty: int
    deleted: int
    flushes: int
    requests: int
    accepted: int = 0


class Traffic:
    """The requests and flushes one session made; every backend call goes through :meth:`call`."""

    __slots__ = ("accepted", "flushes", "guard", "hand_back", "requests")

    def __init__(
        self,
        guard: ThreadGuard | None = None,
        hand_back: Callable[[list[Any]], None] | None = None,
    ) -> None:
        # One thread at a time: a request holds the session's guard (couchmapper.orm.guard);
        # hand_back takes in the edits other threads made meanwhile.
        self.guard = guard
        self.hand_back = hand_back
        self.flushes = 0
        self.requests = 0
        self.accepted = 0  # documents written with "accepted": true (a 202 from a cluster)

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a backend method, counting the request."""
        guard = self.guard
        entered = guard.enter("waiting for the server") if guard is not None else False
        try:
            self.requests += 1
            return method(*args, **kwargs)
        finally:
            if entered:
                assert guard is not None
                foreign = guard.leave()
                if self.hand_back is not None:
                    self.hand_back(foreign)
