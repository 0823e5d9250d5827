"""The import graph of couchmapper: no cycles, and each layer imports only what it may.

Every module is parsed with :mod:`ast`; imports at module level *and* inside functions count
(a function-level import is a cycle postponed, not removed). Imports under
``if TYPE_CHECKING:`` are for type checkers only and are left out. ``from . import x`` and
``from couchmapper.pkg import mod`` resolve to the module ``x``/``mod`` when it is one.

To add a rule, add a :class:`Rule` to :data:`RULES`.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import couchmapper as cm

PACKAGE = Path(cm.__file__).parent
ROOT = "couchmapper"


class Rule(NamedTuple):
    """Modules under ``importers`` may import couchmapper modules under ``allowed`` only."""

    reason: str
    importers: str
    allowed: tuple[str, ...]


RULES: tuple[Rule, ...] = (
    Rule(
        "CouchDB semantics are pure: _couch imports only leaves",
        "couchmapper._couch",
        ("couchmapper._couch", "couchmapper.exceptions", "couchmapper._types"),
    ),
    Rule(
        "the engine knows nothing of its doors (http, backend adapter, backends, sessions)",
        "couchmapper.memory.engine",
        (
            "couchmapper.memory.engine",
            "couchmapper._couch",
            "couchmapper.exceptions",
            "couchmapper._types",
        ),
    ),
    Rule(
        "the HTTP facade sits on the engine, beside (not above) the Backend adapter",
        "couchmapper.memory.http",
        (
            "couchmapper.memory.http",
            "couchmapper.memory.engine",
            "couchmapper._couch",
            "couchmapper.exceptions",
            "couchmapper._types",
        ),
    ),
)

# Third-party packages that one corner of couchmapper alone may import.
EXTERNAL_OWNERS: dict[str, str] = {"couchdb": "couchmapper.backends.couchdb"}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([ROOT, *parts])


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
        if name == "TYPE_CHECKING":
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def _known(name: str) -> str:
    """The couchmapper module ``name`` refers to (the nearest existing parent)."""
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> Iterator[tuple[str, bool]]:
    """``(imported name, is couchmapper)`` for every runtime import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _classified(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if not _under(base, ROOT):
                yield from _classified(base)
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else _known(base)), True


def _classified(name: str) -> Iterator[tuple[str, bool]]:
    if _under(name, ROOT):
        yield _known(name), True
    else:
        yield name, False


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph[module] = {name for name, ours in _imports(module) if ours and name != module}
    return graph


GRAPH = _graph()


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found is not None:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found is not None:
                return found
    return None


def test_the_graph_covers_the_package() -> None:
    """The parser sees the engine's imports (a guard against a silently empty graph)."""
    assert "couchmapper.memory.engine.store" in GRAPH["couchmapper.memory.engine.catalog"]
    assert "couchmapper._couch.collation" in GRAPH["couchmapper._couch.mango"]


def test_cycle_finder_reports_the_path() -> None:
    """A cycle is reported as the path that closes it; a ladder has none."""
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_function_level_imports_count() -> None:
    """An import inside a function is an edge of the graph like any other."""
    tree = ast.parse("def f():\n    from couchmapper import exceptions\n")
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert imports and id(imports[0]) not in _type_checking_nodes(tree)


def test_no_import_cycles() -> None:
    """No couchmapper module imports itself back, through any chain of imports."""
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layer_rules() -> None:
    """Each module imports only the couchmapper modules its layer allows (see RULES)."""
    broken = [
        f"{module} imports {target}: {rule.reason}"
        for rule in RULES
        for module, targets in GRAPH.items()
        if _under(module, rule.importers)
        for target in sorted(targets)
        if not any(_under(target, allowed) for allowed in rule.allowed)
    ]
    assert broken == []


def test_external_packages_have_one_owner() -> None:
    """python-couchdb is imported under couchmapper.backends.couchdb and nowhere else."""
    broken = [
        f"{module} imports {name}"
        for module in MODULES
        for name, ours in _imports(module)
        if not ours
        for package, owner in EXTERNAL_OWNERS.items()
        if _under(name, package) and not _under(module, owner)
    ]
    assert broken == []


def test_no_module_reads_another_modules_private_names() -> None:
    """``mod._name`` and ``from couchmapper.x import _name`` never cross a module boundary."""
    broken = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _under(node.module or "", ROOT):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        broken.append(f"{module} imports {node.module}.{alias.name}")
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                aliases.update(a.asname for a in node.names if a.asname and _under(a.name, ROOT))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                broken.append(f"{module} reads {node.value.id}.{node.attr}")
    assert sorted(broken) == []


def test_import_couchmapper_does_not_load_the_http_facade() -> None:
    """``import couchmapper`` loads the memory engine and its adapter, not the HTTP facade."""
    code = (
        "import sys, couchmapper\n"
        "print(sorted(m for m in sys.modules if m.startswith('couchmapper.memory')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = done.stdout.strip()
    assert "couchmapper.memory.engine.store" in loaded
    assert "couchmapper.memory.http" not in loaded


def test_both_backends_implement_the_whole_protocol_with_its_signatures() -> None:
    """Every Backend method exists on both backends with the protocol's parameters.

    An implementation may only add a trailing ``**options`` (the memory engine's ``get``
    takes CouchDB's other document options).
    """
    from couchmapper.backends.base import Backend
    from couchmapper.backends.couchdb import CouchDBBackend
    from couchmapper.memory import MemoryBackend

    def shape(function: object) -> list[tuple[str, object, object]]:
        parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in parameters]

    methods = [n for n, v in vars(Backend).items() if callable(v) and not n.startswith("_")]
    assert {"purge", "revs_diff", "partition_info", "create_index"} <= set(methods)
    mismatched = []
    for implementation in (MemoryBackend, CouchDBBackend):
        for name in methods:
            wanted = shape(getattr(Backend, name))
            found = shape(getattr(implementation, name))
            extra = found[len(wanted) :]
            if found[: len(wanted)] != wanted or any(
                kind is not inspect.Parameter.VAR_KEYWORD for _, kind, _ in extra
            ):
                mismatched.append(f"{implementation.__name__}.{name}")
    assert mismatched == []
