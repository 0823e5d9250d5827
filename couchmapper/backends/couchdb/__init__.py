"""The CouchDB backend: the :class:`~couchmapper.backends.base.Backend` protocol via python-couchdb.

This package is the only place in couchmapper that imports ``couchdb``. It speaks JSON dicts both
ways, never mutates what it is given, and turns every ``couchdb.http`` error and every socket
error into :mod:`couchmapper.exceptions`::

    404                     NotFoundError (DocumentNotFound for a document: "missing"/"deleted")
    409                     ConflictError(doc_id, rev)
    412                     PreconditionFailed
    400 from a query        QueryError (_find, _index, views, _all_docs, _changes)
    any other status        BackendError(status, error, reason)
    no answer               BackendUnavailable (refused, reset, cut, timed out)

Each backend talks through its own python-couchdb ``Session``, configured differently from
python-couchdb's defaults, for reasons that matter to a unit of work:

* **No response cache.** python-couchdb caches GET answers by ETag and revalidates them; the cache
  is unbounded in time, not thread-safe, and pointless for documents a session keeps anyway.
* **No automatic retry.** python-couchdb silently resends a request once when the connection is
  reset, also a ``POST _bulk_docs`` that the server may already have applied. A flush must see
  that failure (``BackendUnavailable``) and decide itself; retrying a flush is safe.
* **Stale keep-alive connections are dropped before reuse** (the server closed them while they
  sat in the pool), so turning off the retry does not turn idle periods into errors.

Thread safety: a backend may be shared between threads. Every request borrows its own
connection from a locked pool and returns it afterwards; no other state is shared between
requests. One backend per thread works just as well; the pool then holds one connection.

Server-level operations (create, delete, list databases) live on :class:`CouchDBServer`, with
the module functions :func:`create_database`, :func:`delete_database` and
:func:`list_databases` as one-call shortcuts.

Modules: :mod:`.transport` (sessions, pool, requests, error translation), :mod:`.backend`
(``CouchDBBackend``) and :mod:`.server` (``CouchDBServer`` and the shortcuts).
"""

from couchmapper.backends.couchdb.backend import CouchDBBackend
from couchmapper.backends.couchdb.server import (
    CouchDBServer,
    create_database,
    delete_database,
    list_databases,
)
from couchmapper.backends.couchdb.transport import DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_TIMEOUT",
    "CouchDBBackend",
    "CouchDBServer",
    "create_database",
    "delete_database",
    "list_databases",
]
