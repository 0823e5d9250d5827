"""What a session counts: flushes and requests (and the public :class:`SessionStats`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

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

    __slots__ = ("accepted", "flushes", "requests")

    def __init__(self) -> None:
        self.flushes = 0
        self.requests = 0
        self.accepted = 0  # documents written with "accepted": true (a 202 from a cluster)

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a backend method, counting the request."""
        self.requests += 1
        return method(*args, **kwargs)
