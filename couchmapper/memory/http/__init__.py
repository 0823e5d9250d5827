"""The memory engine's HTTP facade: ``MemoryHTTP.handle(method, path, query, body, headers)``.

Modules: :mod:`.facade` (``MemoryHTTP``: server-level routes), :mod:`.routes` (documents under
``/{db}/``), :mod:`.endpoints` (``_all_docs``, ``_changes``, ``_find``, views, ...),
:mod:`.attachments`, :mod:`.params` (query strings and JSON bodies), :mod:`.multipart` and
:mod:`.responses`. It sits on the engine and imports nothing of the Backend adapter.
"""

from couchmapper.memory.http.facade import MemoryHTTP
from couchmapper.memory.http.responses import Response

__all__ = ["MemoryHTTP", "Response"]
