"""CouchDB semantics over plain JSON: pure functions, no I/O, no classes of couchmapper.

Modules: :mod:`.collation` (view collation), :mod:`.mango` (selectors: normalise, compile,
match, sort), :mod:`.erlang` (number text, term rendering, ``term_to_binary``), :mod:`.json`
(copies, equality, paths) and :mod:`.checks` (what a Backend accepts as JSON, ids, attachments).
They import nothing of couchmapper but :mod:`couchmapper.exceptions` and each other.
"""
