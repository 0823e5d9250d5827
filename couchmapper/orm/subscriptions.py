"""Session-scoped signal receivers (``Session.on``), disconnected with their session.

The signal holds a wrapper that reaches the function only through the session's
:class:`Subscriptions`, weakly: a function that refers to the session does not keep it alive,
and a session dropped without ``close()`` still disconnects its receivers.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from blinker import Signal

if TYPE_CHECKING:
    from couchmapper.orm.session import Session

__all__ = ["Subscriptions", "disconnect_all"]

Receiver = Callable[..., Any]


def disconnect_all(connected: list[tuple[Signal, Receiver]]) -> None:
    """Disconnect every ``(signal, receiver)`` pair and forget them."""
    for signal, receiver in connected:
        signal.disconnect(receiver)
    connected.clear()


class Subscriptions:
    """The receivers one session connected for itself."""

    __slots__ = ("__weakref__", "connected", "functions", "session_ref")

    def __init__(self, session: Session) -> None:
        self.session_ref = weakref.ref(session)
        self.connected: list[tuple[Signal, Receiver]] = []
        self.functions: list[Receiver] = []
        # A session dropped without close() still disconnects its receivers.
        weakref.finalize(session, disconnect_all, self.connected)

    def connect(self, signal: Signal, sender: Any, fn: Receiver) -> None:
        """Connect ``fn`` to ``signal`` for this session's documents or flushes only."""
        index = len(self.functions)
        self.functions.append(fn)
        owner = weakref.ref(self)

        def receiver(sender_: Any, **kwargs: Any) -> Any:
            subscriptions = owner()
            session = subscriptions.session_ref() if subscriptions is not None else None
            # Document signals name the session in ``session``; session signals send it.
            origin = kwargs.get("session", sender_)
            if subscriptions is not None and session is not None and origin is session:
                return subscriptions.functions[index](sender_, **kwargs)
            return None

        receiver.__name__ = getattr(fn, "__name__", "receiver")
        receiver.__qualname__ = getattr(fn, "__qualname__", receiver.__name__)
        receiver.__module__ = getattr(fn, "__module__", receiver.__module__)
        if sender is None:
            signal.connect(receiver, weak=False)
        else:
            signal.connect(receiver, sender=sender, weak=False)
        self.connected.append((signal, receiver))

    def disconnect_all(self) -> None:
        """Disconnect every receiver of this session."""
        disconnect_all(self.connected)
