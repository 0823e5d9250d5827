"""couchmapper: typed documents, change tracking and a unit-of-work session for CouchDB."""

from couchmapper import signals
from couchmapper.connect import connect
from couchmapper.document import Document, Embedded, Field, RawDocument, changes, dump, field, load
from couchmapper.exceptions import (
    BackendError,
    BackendUnavailable,
    ConflictError,
    CouchMapperError,
    DocumentNotFound,
    FieldError,
    FlushError,
    FlushFailure,
    HookLimitError,
    NotFoundError,
    PreconditionFailed,
    QueryError,
    SessionStateError,
    ValidationError,
)
from couchmapper.session import Row, Session, SessionStats
from couchmapper.state import Lifecycle
from couchmapper.tracking import MISSING, Change, ChangeList, apply_json_patch
from couchmapper.unitofwork import WriteResult

__all__ = [
    "MISSING",
    "BackendError",
    "BackendUnavailable",
    "Change",
    "ChangeList",
    "ConflictError",
    "CouchMapperError",
    "Document",
    "DocumentNotFound",
    "Embedded",
    "Field",
    "FieldError",
    "FlushError",
    "FlushFailure",
    "HookLimitError",
    "Lifecycle",
    "NotFoundError",
    "PreconditionFailed",
    "QueryError",
    "RawDocument",
    "Row",
    "Session",
    "SessionStateError",
    "SessionStats",
    "ValidationError",
    "WriteResult",
    "apply_json_patch",
    "changes",
    "connect",
    "dump",
    "field",
    "load",
    "signals",
]
