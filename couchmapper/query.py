"""Typed query expressions that compile to Mango selectors, and declared indexes and views.

Class-level field access builds expressions::

    Person.age > 30
    (Person.name == "Ann") | Person.tags.contains("admin")
    Person.address.city.startswith("O")
    ~Person.email.exists()

Values are always literals: a comparison compiles to ``{"field": {"$eq": value}}`` (or
``$gt``, ``$in``... with the value as the operand), so user input -- even a dict such as
``{"$gt": ""}`` -- can never become a Mango operator. Values are converted to JSON by the
field's type (a ``datetime`` compares as its ISO string, an enum as its value).

An ordering that the stored form cannot give is refused when it is built: a ``Decimal`` is
stored as a string, so ``<``, ``<=``, ``>``, ``>=`` and sorts on a Decimal field raise
:class:`~couchmapper.exceptions.ExpressionError` (equality and ``in_`` work).
"""

from __future__ import annotations

import abc
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from couchmapper import mango
from couchmapper.exceptions import ExpressionError, QueryError
from couchmapper.model.conversion import codec_for
from couchmapper.model.registry import model_info
from couchmapper.tracking import PathKey

__all__ = [
    "Expression",
    "FieldPath",
    "Index",
    "NestedAccess",
    "View",
    "and_",
    "compile_criteria",
    "compile_sort",
    "or_",
]


def _escape(key: PathKey) -> str:
    return str(key).replace(".", "\\.")


def _literal(value: Any) -> Any:
    from couchmapper.model.conversion import to_json

    return to_json(value)


class Expression(abc.ABC):
    """A query condition; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ()

    @abc.abstractmethod
    def to_selector(self) -> dict[str, Any]:
        """Return the Mango selector."""

    def __and__(self, other: Expression | dict[str, Any]) -> Expression:
        return _Combined("$and", (self, _as_expression(other)))

    def __rand__(self, other: dict[str, Any]) -> Expression:
        return _Combined("$and", (_as_expression(other), self))

    def __or__(self, other: Expression | dict[str, Any]) -> Expression:
        return _Combined("$or", (self, _as_expression(other)))

    def __ror__(self, other: dict[str, Any]) -> Expression:
        return _Combined("$or", (_as_expression(other), self))

    def __invert__(self) -> Expression:
        return _Not(self)

    def __bool__(self) -> bool:
        msg = "use & and | to combine query expressions, not `and`/`or`"
        raise TypeError(msg)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.to_selector()!r}>"


class _Condition(Expression):
    __slots__ = ("field", "operator", "value")

    def __init__(self, field: str, operator: str, value: Any) -> None:
        self.field = field
        self.operator = operator
        self.value = value

    def to_selector(self) -> dict[str, Any]:
        return {self.field: {self.operator: self.value}}


class _Raw(Expression):
    __slots__ = ("selector",)

    def __init__(self, selector: dict[str, Any]) -> None:
        self.selector = selector

    def to_selector(self) -> dict[str, Any]:
        return self.selector


class _Combined(Expression):
    __slots__ = ("operator", "parts")
    operator: str
    parts: tuple[Expression, ...]

    def __init__(self, operator: str, parts: tuple[Expression, ...]) -> None:
        flat: list[Expression] = []
        for part in parts:
            if isinstance(part, _Combined) and part.operator == operator:
                flat.extend(part.parts)
            else:
                flat.append(part)
        self.operator = operator
        self.parts = tuple(flat)

    def to_selector(self) -> dict[str, Any]:
        return {self.operator: [part.to_selector() for part in self.parts]}


class _Not(Expression):
    __slots__ = ("inner",)

    def __init__(self, inner: Expression) -> None:
        self.inner = inner

    def to_selector(self) -> dict[str, Any]:
        return {"$not": self.inner.to_selector()}


def _as_expression(value: Expression | dict[str, Any]) -> Expression:
    if isinstance(value, Expression):
        return value
    if isinstance(value, dict):
        return _Raw(value)
    msg = f"expected a query expression or a selector dict, not {type(value).__name__}"
    raise TypeError(msg)


def and_(*criteria: Expression | dict[str, Any]) -> Expression:
    """All of the criteria."""
    return _Combined("$and", tuple(_as_expression(c) for c in criteria))


def or_(*criteria: Expression | dict[str, Any]) -> Expression:
    """Any of the criteria."""
    return _Combined("$or", tuple(_as_expression(c) for c in criteria))


class FieldPath:
    """A (possibly nested) field of a document class, as used in queries and sorts.

    Attributes:
        owner: the document class the path starts at.
        path: the attribute names from the document root.
        type: the field's type annotation.
    """

    __slots__ = ("_tp", "owner", "path")

    def __init__(self, owner: type, path: tuple[str, ...], tp: Any) -> None:
        self.owner = owner
        self.path = path
        self._tp = tp

    @property
    def type(self) -> Any:
        """The field's type annotation."""
        return self._tp

    @property
    def mango_name(self) -> str:
        """The Mango field name (dots between segments, dots inside a key escaped)."""
        return ".".join(_escape(key) for key in self.path)

    def __repr__(self) -> str:
        return f"<FieldPath {self.owner.__name__}.{'.'.join(self.path)}>"

    __hash__ = object.__hash__

    # Conversion of operands -------------------------------------------------------------

    def _json(self, value: Any) -> Any:
        try:
            return codec_for(self.type).dump(value)
        except Exception:
            return _literal(value)

    def _item_json(self, value: Any) -> Any:
        item = _item_type(self.type)
        if item is None:
            return _literal(value)
        try:
            return codec_for(item).dump(value)
        except Exception:
            return _literal(value)

    def _cond(self, operator: str, value: Any) -> Expression:
        return _Condition(self.mango_name, operator, value)

    # Comparisons ------------------------------------------------------------------------

    def __eq__(self, value: object) -> Expression:  # type: ignore[override]
        return self._cond("$eq", self._json(value))

    def __ne__(self, value: object) -> Expression:  # type: ignore[override]
        return self._cond("$ne", self._json(value))

    def __lt__(self, value: Any) -> Expression:
        self._check_ordered("$lt")
        return self._cond("$lt", self._json(value))

    def __le__(self, value: Any) -> Expression:
        self._check_ordered("$lte")
        return self._cond("$lte", self._json(value))

    def __gt__(self, value: Any) -> Expression:
        self._check_ordered("$gt")
        return self._cond("$gt", self._json(value))

    def __ge__(self, value: Any) -> Expression:
        self._check_ordered("$gte")
        return self._cond("$gte", self._json(value))

    def in_(self, values: Iterable[Any]) -> Expression:
        """The field equals one of ``values`` (a list, tuple, set... -- not a str)."""
        return self._cond("$in", [self._json(v) for v in self._values("in_", values)])

    def not_in(self, values: Iterable[Any]) -> Expression:
        """The field equals none of ``values`` (a list, tuple, set... -- not a str)."""
        return self._cond("$nin", [self._json(v) for v in self._values("not_in", values)])

    def _values(self, method: str, values: Any) -> list[Any]:
        """``values`` as a list; a str, bytes or mapping is refused, not taken apart."""
        if isinstance(values, (str, bytes, bytearray, Mapping)) or not isinstance(values, Iterable):
            msg = (
                f"{self._describe()}.{method}() takes a list of values, not "
                f"{type(values).__name__} {values!r}"
            )
            if isinstance(values, str):
                msg += f" (for the single value, write .{method}([{values!r}]))"
            raise TypeError(msg)
        return list(values)

    def _describe(self) -> str:
        return f"{self.owner.__name__}.{'.'.join(self.path)}"

    def _check_ordered(self, what: str) -> None:
        """Refuse an ordering (``$lt``..., a sort) that the stored form would get wrong."""
        if _is_decimal(self.type):
            raise unordered_decimal(self._describe(), what)

    def exists(self, present: bool = True) -> Expression:
        """The field is (or, with ``False``, is not) in the document."""
        return self._cond("$exists", bool(present))

    def regex(self, pattern: str) -> Expression:
        """The string field matches a regular expression (unanchored, PCRE)."""
        if not isinstance(pattern, str):
            msg = f"{self._describe()}.regex() takes a str pattern, not {type(pattern).__name__}"
            raise TypeError(msg)
        try:
            # The same validation (PCRE translated to Python's re) the local matcher runs.
            mango.compile_selector({"_": {"$regex": pattern}})
        except QueryError:
            msg = f"{self._describe()}.regex(): invalid regular expression {pattern!r}"
            raise ValueError(msg) from None
        return self._cond("$regex", pattern)

    def startswith(self, prefix: str) -> Expression:
        """The string field starts with ``prefix`` (matched literally)."""
        if not isinstance(prefix, str):
            msg = "startswith() takes a str"
            raise TypeError(msg)
        return self._cond("$beginsWith", prefix)

    def contains(self, item: Any) -> Expression:
        """The list field has ``item`` among its items."""
        return self._cond("$elemMatch", {"$eq": self._item_json(item)})

    def contains_all(self, items: Iterable[Any]) -> Expression:
        """The list field has every one of ``items`` (a list, tuple, set... -- not a str)."""
        return self._cond("$all", [self._item_json(i) for i in self._values("contains_all", items)])

    def any(self, *criteria: Expression | dict[str, Any]) -> Expression:
        """Some item of the list field satisfies every criterion (``$elemMatch``).

        Build item criteria from the item class's fields: ``Order.lines.any(Line.qty > 2)``.
        """
        return self._cond("$elemMatch", _merged(compile_criteria(criteria)))

    def size(self, length: int) -> Expression:
        """The list field has exactly ``length`` items."""
        return self._cond("$size", int(length))

    def asc(self) -> dict[str, str]:
        """Sort ascending by this field."""
        self._check_ordered("sort")
        return {self.mango_name: "asc"}

    def desc(self) -> dict[str, str]:
        """Sort descending by this field."""
        self._check_ordered("sort")
        return {self.mango_name: "desc"}


def _is_decimal(tp: Any) -> bool:
    """``Decimal``, or an optional/union type that holds one."""
    if tp is Decimal:
        return True
    origin = typing.get_origin(tp)
    union = origin is typing.Union or (origin is not None and origin.__name__ == "UnionType")
    return union and Decimal in typing.get_args(tp)


def unordered_decimal(field: str, what: str) -> ExpressionError:
    """The error for an ordering (``$lt``... or ``sort``) on a Decimal field."""
    msg = (
        f"{field} is a Decimal field, and Decimals are stored as strings ('9.50'), which "
        f"CouchDB compares and sorts as strings ('100' < '20' < '9.50'): {what} on it would "
        "give wrong answers, so it is refused. ==, != and in_ work (they match the stored "
        "text, digits and scale alike). To order by the amount, store it in a field of its "
        "own as an int (e.g. cents) or a float, or as a zero-padded string ('000009.50')."
    )
    return ExpressionError(msg)


class NestedAccess:
    """Mixin: attribute access on a field of an embedded type gives its sub-fields.

    Kept out of :class:`FieldPath` itself because a class with ``__getattr__`` makes every
    attribute read on its instances slower, and scalar field descriptors sit on the hot path
    of every field set.
    """

    __slots__ = ()
    owner: type
    path: tuple[str, ...]
    type: Any

    def __getattr__(self, name: str) -> NestedFieldPath:
        if name.startswith("__"):
            raise AttributeError(name)
        return sub_field(self.owner, self.path, self.type, name)


class NestedFieldPath(NestedAccess, FieldPath):
    """A field path inside an embedded object (``Person.address.city``)."""

    __slots__ = ()


def _item_type(tp: Any) -> Any:
    import typing

    for candidate in (tp, *typing.get_args(tp)):
        origin = typing.get_origin(candidate)
        if origin in (list, set, frozenset, tuple):
            args = typing.get_args(candidate)
            return args[0] if args else None
    return None


def _embedded_classes(tp: Any) -> tuple[list[type], list[type]]:
    """The embedded classes a field holds directly, and those it holds as list items."""
    import typing

    direct, items = [], []
    origin = typing.get_origin(tp)
    union = origin is typing.Union or (origin is not None and origin.__name__ == "UnionType")
    for candidate in (tp, *typing.get_args(tp)) if union else (tp,):
        if isinstance(candidate, type) and model_info(candidate) is not None:
            direct.append(candidate)
        item = _item_type(candidate)
        if isinstance(item, type) and model_info(item) is not None:
            items.append(item)
    return direct, items


def sub_field(owner: type, path: tuple[str, ...], tp: Any, name: str) -> NestedFieldPath:
    """The field ``name`` inside the embedded object at ``path``.

    Raises:
        AttributeError: no embedded class at ``path`` has a field ``name`` (names the class).
    """
    direct, items = _embedded_classes(tp)
    where = ".".join(path)
    for cls in direct:
        fields = {a.name: a for a in attrs.fields(cls)}
        if name in fields:
            resolver = model_info(cls)
            assert resolver is not None
            types = resolver.resolve(cls)
            return NestedFieldPath(owner, (*path, name), types[name])
    for cls in items:
        if name in {a.name for a in attrs.fields(cls)}:
            # Mango does not look into array items by a dotted path: it would match nothing.
            msg = (
                f"{owner.__name__}.{where} is a list of {cls.__name__}; query its items with "
                f"{owner.__name__}.{where}.any({cls.__name__}.{name} == ...)"
            )
            raise AttributeError(msg)
    msg = f"{owner.__name__}.{where} has no field {name!r}"
    raise AttributeError(msg)


def _merged(selector: dict[str, Any]) -> dict[str, Any]:
    """``{"$and": [{"a": ...}, {"b": ...}]}`` as ``{"a": ..., "b": ...}`` when the fields differ.

    Both mean the same; the flat form is what every Mango implementation accepts inside
    ``$elemMatch`` (pouchdb-server 4.2.0 fails on ``$and`` there).
    """
    parts = selector.get("$and") if len(selector) == 1 else None
    if not isinstance(parts, list):
        return selector
    merged: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, dict) or any(key in merged for key in part):
            return selector
        merged.update(part)
    return merged


def compile_criteria(criteria: Sequence[Expression | dict[str, Any]]) -> dict[str, Any]:
    """One Mango selector for all ``criteria`` (an empty list selects everything)."""
    if not criteria:
        return {}
    if len(criteria) == 1:
        return _as_expression(criteria[0]).to_selector()
    return and_(*criteria).to_selector()


def compile_sort(sort: Any, owner: type | None = None) -> list[Any] | None:
    """A Mango ``sort`` from a field, ``field.desc()``, a name, or a list of them.

    Raises:
        ExpressionError: a sort on a Decimal field (fields, and names of ``owner``'s fields).
    """
    if sort is None:
        return None
    items = sort if isinstance(sort, (list, tuple)) else [sort]
    out: list[Any] = []
    for given in items:
        has_path = hasattr(given, "query_path") and callable(given.query_path)
        item = given.query_path() if has_path else given
        if isinstance(item, FieldPath):
            out.append(item.asc())
        elif isinstance(item, dict):
            out.append(item)
        elif isinstance(item, str):
            # "-name" sorts descending, as in Django and MongoEngine.
            out.append({item[1:]: "desc"} if item.startswith("-") else {item: "asc"})
        else:
            msg = f"cannot sort by {item!r}"
            raise TypeError(msg)
    if owner is not None:
        for name in (str(next(iter(entry), "")) for entry in out if isinstance(entry, dict)):
            if _is_decimal(_named_field_type(owner, name)):
                raise unordered_decimal(f"{owner.__name__}.{name}", "sort")
    return out


def _named_field_type(owner: type, name: str) -> Any:
    """The type of the field of ``owner`` named ``name`` (a Mango name), or None."""
    try:
        node: Any = owner
        for part in mango.parse_field(name):
            node = getattr(node, part)
    except (QueryError, AttributeError):
        return None
    if hasattr(node, "query_path") and callable(node.query_path):
        node = node.query_path()
    return node.type if isinstance(node, FieldPath) else None


_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@attrs.frozen(init=False)
class Index:
    """A Mango JSON index declared on a document class.

    ``class Meta: indexes = [cm.Index("age", "name")]`` (field names, or field objects when
    declared after the class).
    """

    fields: tuple[str, ...]
    name: str | None = None
    partial: dict[str, Any] | None = None

    def __init__(
        self, *fields: Any, name: str | None = None, partial: dict[str, Any] | None = None
    ) -> None:
        names = tuple(_field_name(f) for f in fields)
        if not names:
            msg = "an index needs at least one field"
            raise ValueError(msg)
        self.__attrs_init__(names, name, partial)

    def index_name(self) -> str:
        """The index name used in CouchDB (given, or made from the fields)."""
        return self.name or "idx-" + "-".join(_NAME.sub("_", f) for f in self.fields)


def _field_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, FieldPath):
        return value.mango_name
    if hasattr(value, "query_path"):
        return str(value.query_path().mango_name)
    msg = f"an index field must be a name or a field, not {value!r}"
    raise TypeError(msg)


class View:
    """A design-document view declared on a document class.

    ``by_name = cm.View(map="function (doc) { if (doc.type == 'Person') emit(doc.name); }")``;
    query it with ``session.view(Person.by_name, key="Ann", include_docs=True)``.
    """

    def __init__(self, map: str, reduce: str | None = None, *, design: str | None = None) -> None:
        self.map = map
        self.reduce = reduce
        self._design = design
        self.name = ""
        self.owner: type | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner = owner
        self.name = name

    @property
    def design(self) -> str | None:
        """The design document name (given, or ``cm-<type name>`` of the declaring class).

        Worked out on use: while the class body runs, its type name is not known yet.
        """
        if self._design is None and self.owner is not None:
            return design_name(self.owner)
        return self._design

    def definition(self) -> dict[str, str]:
        """The view as stored in the design document."""
        found = {"map": self.map}
        if self.reduce is not None:
            found["reduce"] = self.reduce
        return found

    def __repr__(self) -> str:
        return f"<View {self.design}/{self.name}>"


def design_name(cls: type) -> str:
    """The design document name couchmapper uses for a class (``cm-<type name>``)."""
    info = model_info(cls)
    base = (info.type_name if info is not None and info.type_name else None) or cls.__name__
    return "cm-" + _NAME.sub("_", base)


def declared_indexes(cls: type) -> list[Index]:
    """The indexes declared on a class (its ``Meta.indexes``, read when it was defined)."""
    info = model_info(cls)
    return list(info.indexes) if info is not None else []


def declared_views(cls: type) -> dict[str, View]:
    """The views declared on a class and its bases, by name."""
    found: dict[str, View] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, View):
                found[name] = value
    return found


Criteria = Expression | dict[str, Any]
Resolver = Callable[[type], dict[str, Any]]
