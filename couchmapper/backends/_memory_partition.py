"""Placeholder for partition endpoints."""

from __future__ import annotations

from typing import Any

from couchmapper.exceptions import BackendError


def __getattr__(name: str) -> Any:
    raise BackendError(501, "not_implemented", f"memory engine: {name} is not implemented yet")
