"""Backends: the only layer that talks to a CouchDB server (or is one, in memory)."""

from couchmapper.backends.base import Backend, JSONDict

__all__ = ["Backend", "JSONDict"]
