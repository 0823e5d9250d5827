"""``{cm-api}``: the API reference of every name in ``couchmapper.__all__``, by section.

Each name is documented from its own docstring with autodoc (classes with their members,
functions, data); a name exported by the package gets the section :data:`SECTIONS` gives
it, or "Other names" when none does, so a name added to ``__all__`` is never left out. A
module in ``__all__`` (``query``, ``signals``) is shown with its docstring and the names
of its own ``__all__`` that the package does not export already; a blinker signal is shown
with the ``doc`` it was declared with.
"""

from __future__ import annotations

import builtins
import enum
import inspect
import sys
import types
from typing import Any

import blinker
from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

SECTIONS: dict[str, tuple[str, ...]] = {
    "Opening a database": ("connect", "sync_design"),
    "Documents and fields": (
        "Document",
        "Embedded",
        "RawDocument",
        "field",
        "Field",
        "load",
        "dump",
        "changes",
        "MAX_DEPTH",
    ),
    "Sessions": (
        "Session",
        "Lifecycle",
        "SessionStats",
        "WriteResult",
        "Row",
        "ViewResult",
        "Page",
    ),
    "Attachments": ("Attachment", "Attachments"),
    "Stored conflicts": ("conflicts",),
    "Schema versions": ("upgrade",),
    "Queries, indexes and views": ("Expression", "Index", "View", "and_", "or_"),
    "Change tracking": ("Change", "ChangeList", "MISSING", "apply_json_patch"),
    "Exceptions and warnings": ("FlushFailure", "FieldError"),  # and every exception class
    "Modules": (),  # every module lands here
}
OTHER = "Other names"

# Private bases whose methods are documented as the subclass's own.
MIXINS = ("couchmapper.orm.reads.SessionQueries",)

# Classes the public names take or return without exporting them: documented in the given
# section under their own module path, so references to them resolve.
EXTRAS: dict[str, tuple[str, ...]] = {
    "Opening a database": ("couchmapper.backends.base.Backend",),
    "Documents and fields": ("couchmapper.model.registry.FieldOptions",),
    "Schema versions": ("couchmapper.model.versions.UpgradeStep",),
}


def _section(name: str, value: Any) -> str:
    for title, names in SECTIONS.items():
        if name in names:
            return title
    if isinstance(value, types.ModuleType):
        return "Modules"
    if isinstance(value, type) and issubclass(value, BaseException):
        return "Exceptions and warnings"
    return OTHER


def _directive(qualified: str, value: Any) -> list[str]:
    """The autodoc lines of one object, under its public (package-level) name."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return [f".. autoexception:: {qualified}", "   :members:", ""]
    if isinstance(value, type) and issubclass(value, enum.Enum):
        return [f".. autoclass:: {qualified}", "   :members:", "   :undoc-members:", ""]
    if isinstance(value, type) and getattr(value, "_is_protocol", False):
        # A protocol is not instantiated: no (*args, **kwargs) signature.
        return [f".. autoclass:: {qualified}()", "   :members:", ""]
    if isinstance(value, type):
        lines = [f".. autoclass:: {qualified}", "   :members:"]
        mixins = [b for b in value.__bases__ if f"{b.__module__}.{b.__qualname__}" in MIXINS]
        if mixins:
            # Session's query methods live in a mixin (orm/reads): list them with the class.
            lines += ["   :inherited-members: object", "   :exclude-members: pending"]
        return [*lines, ""]
    if callable(value) and (inspect.isfunction(value) or inspect.isbuiltin(value)):
        return [f".. autofunction:: {qualified}", ""]
    if isinstance(value, blinker.Signal):
        # A signal's documentation is the doc= it was declared with, not an attribute
        # docstring: shown as it is (napoleon would read "Sender: ..." as a type).
        doc = value.__doc__ or ""
        body = inspect.cleandoc(doc).splitlines()
        return [f".. py:data:: {qualified}", "", *("   " + line for line in body), ""]
    doc = _attribute_doc(qualified.rpartition(".")[2], value)
    return [f".. py:data:: {qualified}", "", *("   " + line for line in doc), ""]


def _attribute_doc(name: str, value: Any) -> list[str]:
    """The docstring written under ``name = ...`` in the couchmapper module defining it.

    autodoc would look in the package's ``__init__`` (which only imports the name) and fall
    back to the docstring of the value's type (``int``'s, for ``MAX_DEPTH``).
    """
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("couchmapper") or getattr(module, name, None) is not value:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except PycodeError:
            continue
        if ("", name) in docs:
            return [line for line in docs[("", name)] if line is not None]
    msg = f"couchmapper.{name} has no docstring under its assignment"
    raise ValueError(msg)


def _module_lines(package: Any, name: str, module: types.ModuleType) -> list[str]:
    lines = [f".. automodule:: {module.__name__}", ""]
    exported = {id(getattr(package, n)) for n in package.__all__}
    for member in getattr(module, "__all__", ()):
        value = getattr(module, member)
        if id(value) not in exported:
            lines += _directive(f"{module.__name__}.{member}", value)
    return lines


def reference_lines(package_name: str = "couchmapper") -> list[str]:
    """The reStructuredText of the whole reference."""
    package = __import__(package_name)
    by_section: dict[str, list[str]] = {title: [] for title in [*SECTIONS, OTHER]}
    for name in package.__all__:
        by_section[_section(name, getattr(package, name))].append(name)
    lines: list[str] = []
    for title, names in by_section.items():
        if not names:
            continue
        order = SECTIONS.get(title, ())
        names.sort(key=lambda n: (order.index(n) if n in order else len(order), n.lower()))
        lines += [title, "-" * len(title), ""]
        for name in names:
            value = getattr(package, name)
            if isinstance(value, types.ModuleType):
                lines += [f"``{package_name}.{name}``", "^" * (len(name) + len(package_name) + 5)]
                lines += ["", *_module_lines(package, name, value)]
            else:
                lines += _directive(f"{package_name}.{name}", value)
        for dotted in EXTRAS.get(title, ()):
            module_name, _, attr = dotted.rpartition(".")
            value = getattr(__import__(module_name, fromlist=["_"]), attr)
            lines += _directive(dotted, value)
    return lines


def _public_name(target: str, package_name: str = "couchmapper") -> str | None:
    """The package-level name of ``couchmapper.x.y.Name`` when the package exports it."""
    package = __import__(package_name)
    module_name, _, attr = target.rpartition(".")
    if not module_name.startswith(package_name):
        return None
    owner_name, _, member = attr, "", ""
    if attr not in package.__all__:
        # A member: couchmapper.orm.session.Session.flush -> couchmapper.Session.flush
        module_name, _, owner_name = module_name.rpartition(".")
        member = attr
    if owner_name not in package.__all__:
        return None
    try:
        module = __import__(module_name, fromlist=["_"])
    except ImportError:
        return None
    if getattr(module, owner_name, None) is not getattr(package, owner_name):
        return None
    return f"{package_name}.{owner_name}" + (f".{member}" if member else "")


def _resolve(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve docstring references to internal paths (``couchmapper.orm.session.Session``)
    to the public name the reference documents them under (``couchmapper.Session``)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    public = _public_name(target)
    if public is None and "." not in target:
        extras = [d for ds in EXTRAS.values() for d in ds if d.rpartition(".")[2] == target]
        public = extras[0] if extras else _public_name(f"couchmapper.{target}")
    if public is None:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
    )


class _UnlinkBuiltins(SphinxPostTransform):
    """Leave names of builtins (``type``, ``str``) unlinked in signatures.

    Without it ``type[D]`` would be linked to whichever documented attribute is called
    ``type`` (``Field.type``): a wrong link, and a warning.
    """

    default_priority = 5  # before the references are resolved (10)

    def run(self, **kwargs: Any) -> None:
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("refdomain") == "py" and node.get("reftarget") in _BUILTINS:
                node.replace_self(node.children or nodes.literal(text=node["reftarget"]))


_BUILTINS = frozenset(name for name in dir(builtins) if not name.startswith("_"))


class ApiDirective(SphinxDirective):
    """``{cm-api}``: no arguments, no content."""

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(reference_lines()), container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("cm-api", ApiDirective)
    app.connect("missing-reference", _resolve)
    app.add_post_transform(_UnlinkBuiltins)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
