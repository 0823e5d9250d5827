"""The embedded in-memory CouchDB: an engine, its Backend adapter and its HTTP facade.

* :mod:`couchmapper.memory.engine`: the CouchDB semantics over in-process data (store,
  revisions, listings, changes, views, Mango); it knows nothing of the two doors above it.
* :mod:`couchmapper.memory.backend`: :class:`MemoryServer` and :class:`MemoryBackend`, the
  :class:`~couchmapper.backends.Backend` adapter (what ``cm.connect()`` uses).
* :mod:`couchmapper.memory.http`: :class:`MemoryHTTP`, an HTTP-shaped facade over the same
  engine (loaded on first use, so ``import couchmapper`` does not load it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from couchmapper.memory.backend import MemoryBackend, MemoryServer, memory_server

if TYPE_CHECKING:
    from couchmapper.memory.http import MemoryHTTP

__all__ = ["MemoryBackend", "MemoryHTTP", "MemoryServer", "memory_server"]


def __getattr__(name: str) -> Any:
    # The HTTP facade is for tests and tools; sessions never need it, so it loads on demand.
    if name == "MemoryHTTP":
        from couchmapper.memory.http import MemoryHTTP

        return MemoryHTTP
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
