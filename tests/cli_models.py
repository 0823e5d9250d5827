"""Document classes for the ``couchmapper`` command tests (type names prefixed ``cli-``)."""

from __future__ import annotations

import couchmapper as cm


class Tag(cm.Embedded):
    """A nested object, for field paths like ``tags[1].weight``."""

    label: str
    weight: int = 1


class Book(cm.Document, type_name="cli-book"):
    """A document with an index and a view declared."""

    title: str
    pages: int = 0
    tags: list[Tag] = cm.field(factory=list)

    by_title = cm.View(map="function (doc) { if (doc.type === 'cli-book') emit(doc.title); }")

    class Meta:
        """One Mango index."""

        indexes = [cm.Index("pages")]


class Shelf(cm.Document, type_name="cli-shelf"):
    """A second class: documents of both are checked."""

    room: str
