"""couchmapper: typed documents, change tracking and a unit-of-work session for CouchDB."""

from couchmapper import query, signals
from couchmapper.connect import connect
from couchmapper.design import sync_design
from couchmapper.exceptions import (
    AttachmentError,
    BackendError,
    BackendUnavailable,
    ConflictError,
    CouchMapperError,
    DocumentNotFound,
    EncodingError,
    ExpressionError,
    FieldError,
    FlushError,
    FlushFailure,
    HookLimitError,
    InsecureTransportWarning,
    NotFoundError,
    PageTokenError,
    PreconditionFailed,
    QueryError,
    QueryLoadError,
    SchemaVersionError,
    SessionStateError,
    ValidationError,
)
from couchmapper.model.attachments import Attachment, Attachments
from couchmapper.model.base import Document, Embedded, RawDocument, changes, dump, load
from couchmapper.model.codecs import MAX_DEPTH
from couchmapper.model.fields import Field, field
from couchmapper.model.versions import upgrade
from couchmapper.orm.conflicts import conflicts
from couchmapper.orm.merge import WriteResult
from couchmapper.orm.paging import Page
from couchmapper.orm.querying import Row, ViewResult
from couchmapper.orm.session import Session
from couchmapper.orm.state import Lifecycle
from couchmapper.orm.stats import SessionStats
from couchmapper.query import Expression, Index, View, and_, or_
from couchmapper.tracking import MISSING, Change, ChangeList, apply_json_patch

__all__ = [
    "MAX_DEPTH",
    "MISSING",
    "Attachment",
    "AttachmentError",
    "Attachments",
    "BackendError",
    "BackendUnavailable",
    "Change",
    "ChangeList",
    "ConflictError",
    "CouchMapperError",
    "Document",
    "DocumentNotFound",
    "Embedded",
    "EncodingError",
    "Expression",
    "ExpressionError",
    "Field",
    "FieldError",
    "FlushError",
    "FlushFailure",
    "HookLimitError",
    "Index",
    "InsecureTransportWarning",
    "Lifecycle",
    "NotFoundError",
    "Page",
    "PageTokenError",
    "PreconditionFailed",
    "QueryError",
    "QueryLoadError",
    "RawDocument",
    "Row",
    "SchemaVersionError",
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
    "conflicts",
    "connect",
    "dump",
    "field",
    "load",
    "or_",
    "query",
    "signals",
    "sync_design",
    "upgrade",
]
