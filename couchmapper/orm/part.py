"""The base of a session's helpers (loading, queries): the session, weakly, and its state."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from couchmapper.orm.pending import PendingWork
from couchmapper.orm.stats import Traffic

if TYPE_CHECKING:
    from couchmapper.orm.session import Session

__all__ = ["SessionPart"]


class SessionPart:
    """One helper of a session, over its pending work and its request counter.

    The session owns its helpers; they hold it weakly, because a cycle would keep a dropped
    session (and its receivers) alive until the cyclic garbage collector runs.
    """

    def __init__(self, session: Session, pending: PendingWork, traffic: Traffic) -> None:
        self._session = weakref.ref(session)
        self.pending = pending
        self.traffic = traffic

    @property
    def session(self) -> Session:
        """The session (alive while its methods run)."""
        session = self._session()
        assert session is not None
        return session
