"""Schema versions: ``Meta.version``, upgrade steps on raw JSON, and what loading does with them.

A class declares its current version and one upgrade step per version it can read::

    class Person(cm.Document):
        first: str = ""
        last: str = ""

        class Meta:
            version = 2

        @cm.upgrade(1)  # 1 -> 2
        def split_name(doc):
            first, _, last = doc.pop("name", "").partition(" ")
            return {**doc, "first": first, "last": last}

Stored documents carry their version under ``Meta.version_field`` (``"schema_version"`` by
default; a document without it is version 1). Loading an older document runs the steps in
order on a copy of its JSON (so they see fields the class no longer has), then the class
loads and validates the result. A document newer than the class is never downgraded: by
``Meta.newer`` it raises :class:`~couchmapper.exceptions.SchemaVersionError` (``"raise"``, the
default) or loads read-only (``"read_only"``: a flush refuses to write it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from couchmapper._couch.json import get_path, json_copy, same_json, same_once_stored
from couchmapper._types import JSONDict
from couchmapper.exceptions import FieldError, SchemaVersionError, ValidationError
from couchmapper.model.registry import ModelInfo
from couchmapper.tracking import MISSING, Change

__all__ = [
    "DEFAULT_VERSION_FIELD",
    "NEWER_POLICIES",
    "UpgradeStep",
    "Versioning",
    "read_versions",
    "stored_version",
    "unsettled",
    "upgrade",
    "upgrade_changes",
    "upgraded",
]

DEFAULT_VERSION_FIELD: Final = "schema_version"
NEWER_POLICIES: Final = ("raise", "read_only")

UpgradeFunction = Callable[[JSONDict], "JSONDict | None"]


class UpgradeStep:
    """One upgrade step, ``from_version -> from_version + 1``, on a document's raw JSON.

    The function gets a copy of the stored JSON (``_id``, ``_rev``, the type and every
    field, known or not) and returns the new JSON, or edits it in place and returns None.
    It is reached on the class as itself (not bound to instances).

    Attributes:
        from_version: the version the step reads.
        function: the upgrade function.
    """

    __slots__ = ("from_version", "function")

    def __init__(self, from_version: int, function: UpgradeFunction) -> None:
        self.from_version = from_version
        self.function = function

    def __get__(self, obj: Any, owner: type | None = None) -> UpgradeStep:
        return self

    def __call__(self, doc: JSONDict) -> JSONDict:
        """Run the step on ``doc`` (which it may change) and return the upgraded JSON."""
        result = self.function(doc)
        return doc if result is None else result

    def __repr__(self) -> str:
        name = getattr(self.function, "__qualname__", repr(self.function))
        return f"<UpgradeStep {self.from_version} -> {self.from_version + 1} {name}>"


def upgrade(from_version: int) -> Callable[[UpgradeFunction], UpgradeStep]:
    """Declare an upgrade step of a document class, from ``from_version`` to the next.

    Raises:
        TypeError: ``from_version`` is not an int of at least 1.
    """
    if type(from_version) is not int or from_version < 1:
        msg = f"cm.upgrade() takes the version the step reads (an int >= 1), not {from_version!r}"
        raise TypeError(msg)

    def decorator(function: UpgradeFunction) -> UpgradeStep:
        return UpgradeStep(from_version, function)

    return decorator


@attrs.frozen
class Versioning:
    """The schema version of a class and how older documents reach it.

    Attributes:
        version: the current version (``Meta.version``).
        field: the JSON key holding a document's version (``Meta.version_field``).
        newer: what loading a newer document does: ``"raise"`` or ``"read_only"``.
        steps: from-version -> the step to the next version.
    """

    version: int
    field: str
    newer: str
    steps: dict[int, UpgradeStep]


def read_versions(info: ModelInfo) -> None:
    """Read ``Meta.version`` and the upgrade steps of a document class into ``info.versions``.

    Raises:
        TypeError: a bad ``Meta.version``/``version_field``/``newer``, a field named like the
            version field, steps without ``Meta.version``, or a gap between the steps.
    """
    cls = info.cls
    meta = getattr(cls, "Meta", None)
    version = getattr(meta, "version", None)
    steps: dict[int, UpgradeStep] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, UpgradeStep):
                steps[value.from_version] = value
    if version is None:
        if steps:
            msg = f"{cls.__name__} declares upgrade steps but no `class Meta: version = N`"
            raise TypeError(msg)
        return
    name = cls.__name__
    if type(version) is not int or version < 1:
        msg = f"{name}.Meta.version must be an int >= 1, not {version!r}"
        raise TypeError(msg)
    field = getattr(meta, "version_field", DEFAULT_VERSION_FIELD)
    if not isinstance(field, str) or not field or field.startswith("_"):
        msg = f"{name}.Meta.version_field must be a JSON key not starting with '_', not {field!r}"
        raise TypeError(msg)
    if field in {a.name for a in attrs.fields(cls)} or field == info.discriminator:
        msg = (
            f"{name}.{field}: the name holds each document's schema version "
            "(Meta.version_field); rename the field, or set another Meta.version_field"
        )
        raise TypeError(msg)
    newer = getattr(meta, "newer", "raise")
    if newer not in NEWER_POLICIES:
        msg = f"{name}.Meta.newer must be 'raise' or 'read_only', not {newer!r}"
        raise TypeError(msg)
    _check_steps(name, version, steps)
    info.versions = Versioning(version, field, newer, steps)


def _check_steps(name: str, version: int, steps: dict[int, UpgradeStep]) -> None:
    """Refuse steps past the class's version and gaps between them."""
    beyond = sorted(v for v in steps if v >= version)
    if beyond:
        msg = f"{name} is version {version}; it has an upgrade step from version {beyond[0]}"
        raise TypeError(msg)
    if steps:
        missing = [v for v in range(min(steps), version) if v not in steps]
        if missing:
            msg = f"{name} has no upgrade step from version {missing[0]} to {missing[0] + 1}"
            raise TypeError(msg)


def stored_version(versioning: Versioning, raw: JSONDict, cls_name: str) -> int:
    """The schema version a stored document carries (1 when it has none).

    Raises:
        ValidationError: the version field holds something other than an int >= 1.
    """
    found = raw.get(versioning.field, 1)
    if type(found) is not int or found < 1:
        message = f"a schema version must be an int >= 1, not {found!r}"
        error = FieldError(versioning.field, "an int >= 1", message)
        raise ValidationError(raw.get("_id"), [error], cls_name)
    return found


def upgraded(versioning: Versioning, raw: JSONDict, cls_name: str) -> tuple[JSONDict, int]:
    """The JSON a class loads for stored document ``raw``, and the version ``raw`` had.

    ``raw`` itself is returned when it is current (or newer, read-only); an older one is
    copied and upgraded step by step, its version field set after each step.

    Raises:
        SchemaVersionError: the document is newer than the class (``Meta.newer = "raise"``),
            or older than the first step the class has.
        ValidationError: a step failed (the error names the step and the document).
    """
    current = versioning.version
    version = stored_version(versioning, raw, cls_name)
    if version == current:
        return raw, version
    doc_id = raw.get("_id")
    if version > current:
        if versioning.newer == "raise":
            raise SchemaVersionError(doc_id, cls_name, version, current, field=versioning.field)
        return raw, version
    doc: JSONDict = json_copy(raw)
    for step_version in range(version, current):
        step = versioning.steps.get(step_version)
        if step is None:
            raise SchemaVersionError(
                doc_id, cls_name, version, current, missing=step_version, field=versioning.field
            )
        try:
            doc = step(doc)
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            message = f"upgrade step {step!r} failed: {type(exc).__name__}: {exc}"
            error = FieldError(versioning.field, f"version {current}", message)
            raise ValidationError(doc_id, [error], cls_name) from exc
        doc[versioning.field] = step_version + 1
    return doc, version


def unsettled(base: JSONDict, changes: Sequence[Change]) -> list[Change]:
    """``changes`` without those ``base`` already shows (a rebase's base, itself upgraded).

    A rebase compares upgraded JSON (both sides load through the class); the upgrade's own
    changes are already in such a base, and re-applying them would look like an overlap.
    Only changes at key paths are dropped: an item inserted into a list is never settled.
    """
    kept = []
    for change in changes:
        if all(isinstance(key, str) for key in change.path):
            found = get_path(base, change.path, MISSING)
            if (change.value is MISSING and found is MISSING) or (
                found is not MISSING and same_json(found, change.value)
            ):
                continue
        kept.append(change)
    return kept


def upgrade_changes(loaded: JSONDict, written: JSONDict) -> list[Change]:
    """The changes an upgrade makes: from the stored JSON to what the class writes.

    As :func:`~couchmapper.orm.merge.changes_between` finds them (the smallest differing
    paths, dicts compared key by key, lists whole; CouchDB's ``_`` members left out), in one
    pass: a migration records this for every document it upgrades.
    """
    found: list[Change] = []
    _diff(loaded, written, (), found)
    return found


def _diff(before: JSONDict, after: JSONDict, path: tuple[str, ...], out: list[Change]) -> None:
    top = not path
    for key, old in before.items():
        if top and key[:1] == "_":
            continue
        new = after.get(key, MISSING)
        if old is new or (type(old) is type(new) and type(old) in _PLAIN and old == new):
            continue  # the common case: a value the upgrade did not touch
        where = (*path, key)
        if new is MISSING:
            out.append(Change("remove", where, MISSING, old))
        elif type(old) is dict and type(new) is dict:
            _diff(old, new, where, out)
        elif not same_once_stored(old, new):
            out.append(Change("replace", where, new, old))
    for key, new in after.items():
        if key not in before and not (top and key[:1] == "_"):
            out.append(Change("add", (*path, key), new))


_PLAIN: Final = frozenset({str, int, bool})
