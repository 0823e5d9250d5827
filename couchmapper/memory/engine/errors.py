"""The engine's error constructors: CouchDB's names for a bad request and a bad query."""

from __future__ import annotations

from couchmapper.exceptions import BackendError, QueryError

__all__ = ["bad_request", "query_parse_error"]


def bad_request(reason: str, error: str = "bad_request") -> BackendError:
    """A 400 error with CouchDB's names."""
    return BackendError(400, error, reason)


def query_parse_error(reason: str) -> QueryError:
    """CouchDB's 400 ``query_parse_error`` for a bad query option."""
    return QueryError("query_parse_error", reason)
