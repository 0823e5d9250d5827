"""Mango's ``$regex``: PCRE patterns run by PCRE itself, as Erlang's ``re`` runs them.

Erlang's ``re`` is PCRE, so this is PCRE too (the ``pcre2`` library), on UTF-8 bytes without
Unicode mode, under PCRE's match limit: a pattern that backtracks catastrophically gives up
(no match, as CouchDB answers) instead of hanging.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pcre2

__all__ = ["compile_regex", "regex_search"]


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    """Compile a ``$regex`` pattern as CouchDB's Erlang ``re`` does, or None when invalid.

    ``re:compile(Pattern)`` takes a binary, so the pattern is compiled as UTF-8 bytes.
    """
    try:
        return pcre2.compile(pattern.encode("utf-8", "surrogatepass"))
    except (pcre2.LibraryError, ValueError, TypeError):
        return None


def regex_search(regex: Any, value: Any) -> bool:
    """Search a string value like ``re:run(Value, Regex, [{capture, none}])``.

    PCRE counts its backtracking steps against a match limit (10,000,000 by default, as in
    Erlang), so no pattern can run for ever: ``(a+)+$`` against 33 characters gives up within
    a fraction of a second. Erlang's ``re:run`` then answers ``nomatch``, and so does CouchDB
    (``_find`` answers without the document); this matcher does the same.
    """
    if not isinstance(value, str):
        return False
    try:
        return regex.search(value.encode("utf-8", "surrogatepass")) is not None
    except pcre2.LibraryError:
        return False
