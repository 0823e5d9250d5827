"""Package structure: the public surface and the import ladder of DESIGN.md."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import couchmapper as cm

PACKAGE = Path(cm.__file__).parent

# Lower layers first; a module may import only from its own layer or below.
LADDER: list[set[str]] = [
    {"exceptions", "_url", "_couch", "_types", "orm.__init__", "model.__init__", "_log"},
    {"mango", "_changelog", "tracking", "signals", "orm.identity", "orm.guard", "model.registry"},
    {"model.codecs", "model.reserved", "model.validation", "model.attachments"},
    {"model.containers"},
    {"model.codegen"},
    {"model.conversion"},
    {"orm.state", "query", "orm.merge"},
    {"model.fields", "model.raw", "model.versions"},
    {"model.base"},
    {"backends", "memory"},
    {"connect", "design"},
    {
        "orm.pending",
        "orm.stats",
        "orm.flights",
        "orm.database",
        "orm.subscriptions",
        "orm.encoding",
    },
    {"orm.branches"},
    {"orm.part", "orm.attachments"},
    {"orm.querying", "orm.notify"},
    {"orm.paging", "orm.conflicts"},
    {"orm.reads"},
    {"orm.loading"},
    {"orm.dictapi"},
    {"orm.flush"},
    {"orm.session"},
    {"__init__", "mypy"},
    {"testing", "migrate"},
    {"cli"},
]

# Packages whose modules sit on the ladder one by one (``orm.session``), not as a whole.
SPLIT = {"orm", "model"}


def _layer(module: str) -> int:
    for index, names in enumerate(LADDER):
        if module in names:
            return index
    msg = f"module {module!r} is not placed on the ladder in this test"
    raise AssertionError(msg)


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1 and rel.parts[0] in SPLIT:
        return f"{rel.parts[0]}.{path.stem}"
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _module(dotted: str) -> str:
    """The ladder name of module ``couchmapper.<dotted>``."""
    parts = dotted.split(".")
    if parts[0] in SPLIT:
        return ".".join(parts[:2]) if len(parts) > 1 else f"{parts[0]}.__init__"
    return parts[0]


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports there are for types only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def _runtime_imports(path: Path) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a file that run (any depth; not under ``TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_blocks(tree)
    for node in ast.walk(tree):
        if id(node) not in skip and isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in _runtime_imports(path):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("couchmapper")
        ):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(_module(".".join(parts[1:])))
            else:
                found.update(_module(alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("couchmapper."):
                    found.add(_module(alias.name.split(".", 1)[1]))
    return found


def test_all_is_sorted_and_exported() -> None:
    """__all__ is sorted (constants, classes, functions: ruff's order) and all exported."""

    def order(name: str) -> tuple[int, str]:
        kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
        return kind, name

    assert list(cm.__all__) == sorted(cm.__all__, key=order)
    for name in cm.__all__:
        assert hasattr(cm, name), name


def test_imports_only_point_down() -> None:
    """No module imports from a layer above its own (TYPE_CHECKING imports excepted)."""
    upward = []
    for path in PACKAGE.rglob("*.py"):
        here = _top(path)
        for imported in _imports(path) - {here}:
            if _layer(imported) > _layer(here):
                upward.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert upward == []


def test_only_the_couchdb_backend_imports_couchdb() -> None:
    """python-couchdb is imported under backends/couchdb/ alone."""
    importers = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "couchdb" or name.startswith("couchdb.") for name in names):
                importers.append(str(path.relative_to(PACKAGE)))
    assert sorted(set(importers)) == [
        "backends/couchdb/backend.py",
        "backends/couchdb/server.py",
        "backends/couchdb/transport.py",
    ]


def test_py_typed_is_shipped() -> None:
    """The package ships its py.typed marker."""
    assert (PACKAGE / "py.typed").exists()


def _module_graph() -> dict[str, set[str]]:
    """Module -> the couchmapper modules it imports, function-level imports included."""
    modules = {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
        for path in PACKAGE.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in _runtime_imports(path):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("couchmapper"):
                base = (node.module or "").removeprefix("couchmapper").lstrip(".")
                targets = [f"{base}.{alias.name}".lstrip(".") for alias in node.names]
                targets = [t if t in modules else base for t in targets]
            elif isinstance(node, ast.Import):
                targets = [
                    alias.name.removeprefix("couchmapper.")
                    for alias in node.names
                    if alias.name.startswith("couchmapper.")
                ]
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found
    return graph


def test_no_import_cycles_outside_the_backends() -> None:
    """No module reaches itself through imports (function-level ones counted)."""
    graph = {
        name: {t for t in targets if not t.startswith("backends")}
        for name, targets in _module_graph().items()
        if not name.startswith("backends")
    }
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles == []


def test_the_session_is_imported_for_types_only_below_it() -> None:
    """Lower modules import ``orm.session`` only under ``if TYPE_CHECKING:``."""
    importers = sorted(name for name, found in _module_graph().items() if "orm.session" in found)
    assert importers == ["__init__", "migrate", "testing"]
