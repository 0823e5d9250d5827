"""Mango selectors and CouchDB collation over plain JSON (no classes, no I/O).

Shared by the memory backend (``_find``, ``_index``, views) and the session's read-your-writes
overlay, so a pending document is matched exactly as the server would match it.

CONTRACT (the functions below are the public surface; the bodies are being written):

* ``MISSING``: sentinel for "the field does not exist".
* ``parse_field(name) -> tuple[str, ...]``: split a Mango field name on unescaped dots
  (``"a\\.b.c"`` is ``("a.b", "c")``).
* ``get_field(doc, path) -> value | MISSING``.
* ``normalize_selector(selector) -> dict``: validate like CouchDB 3.5 and return the
  normalised form; raises ``QueryError(error, reason)`` with CouchDB's error names.
* ``compile_selector(selector) -> Callable[[doc], bool]`` and ``match(selector, doc) -> bool``.
* ``collate(a, b) -> int`` (-1/0/1, CouchDB view/ICU collation) and
  ``collation_key(value)`` (a sort key whose order equals ``collate``).
* ``sort_docs(docs, sort) -> list``: order documents by a Mango ``sort`` spec.
"""
