"""The one place the differential fuzzer imports the memory engine from (re-point it here)."""

from __future__ import annotations

from couchmapper._couch.collation import collate
from couchmapper.backends.memory import MemoryServer
from couchmapper.memory.http import MemoryHTTP, Response

__all__ = ["MemoryHTTP", "Response", "collate", "new_memory_http"]


def new_memory_http() -> MemoryHTTP:
    """A fresh in-process HTTP facade over a new, empty memory server."""
    return MemoryHTTP(MemoryServer())
