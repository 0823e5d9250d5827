"""Versioned classes for the migration tests (the CLI imports this module by name)."""

from __future__ import annotations

from typing import Any

import couchmapper as cm


class Member(cm.Document, type_name="mig-member"):
    """Version 3: ``name`` split (1 -> 2), ``mail`` renamed ``email`` (2 -> 3)."""

    first: str = ""
    last: str = ""
    email: str | None = None

    class Meta:
        version = 3

    @cm.upgrade(1)
    def split_name(doc: dict[str, Any]) -> None:
        """1 -> 2: split the full name (a document without one cannot be upgraded)."""
        first, _, last = doc.pop("name").partition(" ")
        doc["first"], doc["last"] = first, last

    @cm.upgrade(2)
    def rename_mail(doc: dict[str, Any]) -> None:
        """2 -> 3: ``mail`` becomes ``email``."""
        doc["email"] = doc.pop("mail", None)


class Note(cm.Document, type_name="mig-note"):
    """An unversioned class: its documents are skipped."""

    text: str = ""


def member_v1(n: int) -> dict[str, Any]:
    """The JSON of a version-1 member number ``n``."""
    return {"_id": f"m{n:04d}", "type": "mig-member", "name": f"First{n} Last{n}", "mail": f"{n}@x"}
