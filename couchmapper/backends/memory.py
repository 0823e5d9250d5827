"""The in-memory backend's historical import path; see :mod:`couchmapper.memory`."""

from couchmapper.memory.backend import MemoryBackend, MemoryServer, memory_server

__all__ = ["MemoryBackend", "MemoryServer", "memory_server"]
