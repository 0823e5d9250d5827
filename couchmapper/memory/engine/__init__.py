"""The memory engine: CouchDB 3.5's behaviour over in-process data, with no I/O of its own.

It imports :mod:`couchmapper._couch` and :mod:`couchmapper.exceptions` only, never the Backend
adapter or the HTTP facade above it; its functions return JSON-shaped data or raise
couchmapper's errors (with CouchDB's status, error and reason).

Modules, lowest first: ``errors`` (error constructors), ``js`` (JavaScript runner), ``revs``
(revision trees, rev hashes, attachments, sequences), ``docs`` (parsing written documents),
``options`` (shared option checks), ``store`` (``Database``: one database and its lock),
``views`` (map/reduce), ``listing`` (``_all_docs``, ``_changes``, ``_bulk_get``, partitions),
``feeds`` (longpoll and continuous changes), ``replication`` (``_revs_diff``, ``_purge``),
``indexes`` and ``find`` (Mango), and
``catalog`` (the set of databases of one server).
"""
