"""couchmapper: typed documents, change tracking and a unit-of-work session for CouchDB."""

from couchmapper.exceptions import (
    BackendError,
    BackendUnavailable,
    ConflictError,
    CouchMapperError,
    DocumentNotFound,
    FlushError,
    NotFoundError,
    QueryError,
    SessionStateError,
    ValidationError,
)

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "ConflictError",
    "CouchMapperError",
    "DocumentNotFound",
    "FlushError",
    "NotFoundError",
    "QueryError",
    "SessionStateError",
    "ValidationError",
]
