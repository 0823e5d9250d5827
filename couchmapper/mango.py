"""Mango selectors and CouchDB collation over plain JSON (the public module).

The implementation is :mod:`couchmapper._couch.mango`; this module keeps the public import
path ``couchmapper.mango`` and its names.
"""

from __future__ import annotations

from couchmapper._couch.mango import (
    MISSING,
    collate,
    collation_key,
    compile_selector,
    get_field,
    match,
    normalize_selector,
    parse_field,
    raw_collate,
    sort_docs,
)

__all__ = [
    "MISSING",
    "collate",
    "collation_key",
    "compile_selector",
    "get_field",
    "match",
    "normalize_selector",
    "parse_field",
    "raw_collate",
    "sort_docs",
]
