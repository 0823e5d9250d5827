"""mypy plugin: class-level field access (``Person.age``) is a query field, not an ``int``.

At run time ``Person.age`` is the field descriptor, which builds query expressions
(``Person.age > 30``). Type checkers that only see ``age: int`` think it is an ``int``; enable
this plugin so they see a :class:`~couchmapper.query.NestedFieldPath` instead::

    [tool.mypy]
    plugins = ["couchmapper.mypy"]
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import TypeInfo
from mypy.plugin import AttributeContext, Plugin
from mypy.types import Instance, Type

__all__ = ["CouchMapperPlugin", "plugin"]

_BASES = ("couchmapper.model.base.Document", "couchmapper.model.base.Embedded")
_FIELD_TYPE = "couchmapper.query.NestedFieldPath"


class CouchMapperPlugin(Plugin):
    """Types class-level access to document fields as query fields."""

    def get_class_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        class_name, _, attribute = fullname.rpartition(".")
        found = self.lookup_fully_qualified(class_name)
        info = found.node if found is not None else None
        if not isinstance(info, TypeInfo) or not any(info.has_base(base) for base in _BASES):
            return None
        if attribute == "id" or attribute not in _field_names(info):
            return None
        return self._field_type

    def _field_type(self, ctx: AttributeContext) -> Type:
        found = self.lookup_fully_qualified(_FIELD_TYPE)
        if found is None or not isinstance(found.node, TypeInfo):
            return ctx.default_attr_type
        return Instance(found.node, [])


def _field_names(info: TypeInfo) -> set[str]:
    """Names of the dataclass-like fields of a class and its bases (as mypy recorded them)."""
    names: set[str] = set()
    for klass in info.mro:
        metadata = klass.metadata.get("dataclass", {})
        names.update(str(a["name"]) for a in metadata.get("attributes", ()))
    return names


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    del version
    return CouchMapperPlugin
