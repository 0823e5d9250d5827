"""CouchDB semantics over plain JSON: pure functions, no I/O, no classes of couchmapper.

Modules: :mod:`.collation` (view collation), :mod:`.fields` (Mango field paths),
:mod:`.regex` (``$regex`` as Erlang runs it), :mod:`.mango` (selectors: normalise, compile,
match, sort), :mod:`.erlang` (float reading, term text, ``term_to_binary``), :mod:`.json`
(copies, strict and loose equality, get/set at a path) and :mod:`.checks` (what a Backend
accepts: JSON values, ids, attachments). They import nothing of couchmapper but
:mod:`couchmapper.exceptions` and each other.
"""
