"""couchmapper: typed documents, change tracking and a unit-of-work session for CouchDB."""

from couchmapper import query, signals
from couchmapper._queries import ViewResult, sync_design
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
from couchmapper.query import Expression, Index, View, and_, or_
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
    "Expression",
    "Field",
    "FieldError",
    "FlushError",
    "FlushFailure",
    "HookLimitError",
    "Index",
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
    "View",
    "ViewResult",
    "WriteResult",
    "and_",
    "apply_json_patch",
    "changes",
    "connect",
    "dump",
    "field",
    "load",
    "or_",
    "query",
    "signals",
    "sync_design",
]
