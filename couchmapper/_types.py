"""Type aliases shared by every layer: a leaf module that imports nothing of couchmapper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias, get_args

__all__ = ["CONFLICT_POLICIES", "ConflictPolicy", "JSONDict", "MergeRule", "Obj"]

JSONDict: TypeAlias = dict[str, Any]
"""A JSON object as CouchDB sends and stores it."""

ConflictPolicy: TypeAlias = Literal["raise", "rebase", "overwrite"]
"""What a flush does when a document was changed on the server meanwhile."""

CONFLICT_POLICIES: Final[tuple[ConflictPolicy, ...]] = get_args(ConflictPolicy)
"""Every :data:`ConflictPolicy`, in the order the error messages name them."""

MergeRule: TypeAlias = str | Callable[[Any, Any, Any], Any]
"""A merge rule: a built-in name (``"sum"``, ``"union"``...) or ``f(base, mine, theirs)``."""

Obj: TypeAlias = Any
"""A tracked document object: a :class:`~couchmapper.model.base.Document` or a RawDocument."""
