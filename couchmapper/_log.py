"""What couchmapper tells the standard :mod:`logging` module: requests, flushes, slow work.

Two loggers, both under ``couchmapper``:

``couchmapper.http``
    one DEBUG record per HTTP request to a CouchDB server: method, host:port, path (without
    the query string), status and the seconds until the answer's status line and headers
    came back; a WARNING instead when that took longer than :data:`thresholds`.request.
    Never the credentials (python-couchdb keeps them out of the URL), a query string or a
    body.
``couchmapper.flush``
    one INFO record per flush that had work: documents written, failed, requests, seconds,
    conflicts met and rebases (rounds that sent conflicting documents again); a WARNING
    instead when it took longer than :data:`thresholds`.flush or failed, and a WARNING for
    each round that sends conflicting documents again.

The backends and the flush call in here with one line each (a wrapper or a decorator), so
the message formats live in one place.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from couchmapper.orm.flush import FlushRun

__all__ = [
    "FLUSH",
    "HTTP",
    "Thresholds",
    "counts_conflicts",
    "logged_flush",
    "request_done",
    "thresholds",
    "timed_request",
]

HTTP = logging.getLogger("couchmapper.http")
FLUSH = logging.getLogger("couchmapper.flush")
# A library leaves the output to the application: without this, records of WARNING and up
# would go to stderr through logging's last-resort handler when nothing is configured.
logging.getLogger("couchmapper").addHandler(logging.NullHandler())

_R = TypeVar("_R")


@dataclass
class Thresholds:
    """Seconds past which a request or a flush is logged as a WARNING (slow)."""

    request: float = 1.0
    flush: float = 5.0


thresholds = Thresholds()
"""The thresholds in force; change them in place (``thresholds.request = 0.5``)."""


def _where(url: str) -> tuple[str, str]:
    """host:port and the path of a URL: never its user info or query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    where = f"{host}:{parts.port}" if parts.port else host
    return where, parts.path or "/"


def _status_of(exc: BaseException, statuses: Mapping[type, int]) -> str:
    """The HTTP status an exception of the HTTP client stands for, or its class name."""
    status = statuses.get(type(exc))
    if status is not None:
        return str(status)
    first = exc.args[0] if exc.args else None
    # python-couchdb's ServerError carries (status, detail).
    if isinstance(first, tuple) and first and isinstance(first[0], int):
        return str(first[0])
    return type(exc).__name__


def timed_request(
    request: Callable[..., tuple[Any, ...]],
    statuses: Mapping[type, int],
    method: str,
    url: str,
    *args: Any,
    **kwargs: Any,
) -> tuple[Any, ...]:
    """Call python-couchdb's ``Session.request`` and log the request.

    Called from an overriding method (not stored on the session as a wrapper: a bound
    method kept on its own object is a reference cycle, which would leave the connection
    pool, and its sockets, to the cyclic garbage collector).

    Args:
        request: the parent's ``request(method, url, ...)``, answering ``(status, ...)``.
        statuses: the HTTP status of each exception class that stands for one.
        method: the HTTP method.
        url: the URL requested.
        args: passed on to ``request``.
        kwargs: passed on to ``request``.
    """
    started = time.perf_counter()
    try:
        answer = request(method, url, *args, **kwargs)
    except BaseException as exc:
        request_done(method, url, _status_of(exc, statuses), started)
        raise
    request_done(method, url, str(answer[0]), started)
    return answer


def request_done(method: str, url: str, status: str, started: float) -> None:
    """Log one request that took from ``started`` (``time.perf_counter()``) until now."""
    seconds = time.perf_counter() - started
    slow = seconds > thresholds.request
    if not slow and not HTTP.isEnabledFor(logging.DEBUG):
        return
    where, path = _where(url)
    if slow:
        HTTP.warning(
            "slow request: %s %s %s -> %s in %.3f s (over %g s)",
            method,
            where,
            path,
            status,
            seconds,
            thresholds.request,
        )
    else:
        HTTP.debug("%s %s %s -> %s in %.3f s", method, where, path, status, seconds)


def logged_flush(run: Callable[[FlushRun], _R]) -> Callable[[FlushRun], _R]:
    """Decorate :meth:`FlushRun.run`: one record per flush that had work to do."""

    @functools.wraps(run)
    def logged(self: FlushRun) -> _R:
        started = time.perf_counter()
        requests = self.traffic.requests
        try:
            result = run(self)
        except BaseException as exc:
            _flush_done(self, started, requests, exc)
            raise
        _flush_done(self, started, requests, None)
        return result

    return logged


def _flush_done(run: FlushRun, started: float, requests: int, error: BaseException | None) -> None:
    seconds = time.perf_counter() - started
    sent = run.traffic.requests - requests
    if not sent and error is None and not run.failures:
        return  # nothing to write: not worth a record
    values = (
        len(run.written),
        len(run.failures),
        sent,
        seconds,
        getattr(run, "_conflicts_met", 0),
        getattr(run, "_resent_rounds", 0),
    )
    text = "%d written, %d failed, %d request(s) in %.3f s, %d conflict(s), %d rebase(s)"
    if error is not None:
        FLUSH.warning("flush failed (%s): " + text, type(error).__name__, *values)
    elif seconds > thresholds.flush:
        FLUSH.warning("slow flush (over %g s): " + text, thresholds.flush, *values)
    else:
        FLUSH.info("flush: " + text, *values)


_Resend = dict[str, Any]


def counts_conflicts(
    after_conflicts: Callable[[FlushRun, list[str]], _Resend],
) -> Callable[[FlushRun, list[str]], _Resend]:
    """Decorate ``FlushRun._after_conflicts``: count conflicts and rebases, warn of each resend.

    A rebase is a round that sends conflicting documents again (rebased, overwritten or
    resent after a lost answer); with the policy ``"raise"`` conflicts are only reported.
    """

    @functools.wraps(after_conflicts)
    def logged(self: FlushRun, conflicts: list[str]) -> _Resend:
        met = getattr(self, "_conflicts_met", 0) + len(conflicts)
        self._conflicts_met = met  # type: ignore[attr-defined]
        to_send = after_conflicts(self, conflicts)
        if to_send:
            self._resent_rounds = getattr(self, "_resent_rounds", 0) + 1  # type: ignore[attr-defined]
            FLUSH.warning(
                "retrying %d of %d conflicting document(s) (rebase round %d)",
                len(to_send),
                len(conflicts),
                self.rebases + 1,
            )
        return to_send

    return logged
