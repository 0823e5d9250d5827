"""The peer suite: python-couchdb 1.2's own tests against ``couchmapper serve`` and CouchDB 3.5.

Run it with ``make peer-suite COUCHDB_RUN=/path/to/couchdb/run`` (see :mod:`.__main__`).
"""
