"""JavaScript for the memory engine: map functions, validate_doc_update, design doc checks.

Runs through the optional ``quickjs`` package (``pip install couchmapper[js]``), imported
lazily so the engine works without it until a JavaScript function is needed. The globals
mirror what CouchDB's query server gives a map function: ``emit``, ``log``, ``toJSON``,
``sum``, ``isArray``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from couchmapper.exceptions import BackendError

__all__ = [
    "BUILTIN_REDUCES",
    "MapRunner",
    "js_available",
    "run_validate",
    "validate_design_doc",
]

BUILTIN_REDUCES = ("_count", "_sum", "_stats", "_approx_count_distinct")

_PRELUDE = r"""
var __emits = [];
function emit(k, v) { __emits.push([k === undefined ? null : k, v === undefined ? null : v]); }
function log(m) {}
function toJSON(o) { return JSON.stringify(o); }
function isArray(a) { return Array.isArray(a); }
function sum(a) { var s = 0; for (var i = 0; i < a.length; i++) { s += a[i]; } return s; }
var __fns = [];
function __compile(src) {
  try { var f = eval("(" + src + ")"); }
  catch (e) { return JSON.stringify({error: String(e)}); }
  if (typeof f !== "function") { return JSON.stringify({error: "not a function"}); }
  __fns.push(f);
  return JSON.stringify({index: __fns.length - 1});
}
function __map(i, text) {
  __emits = [];
  try { __fns[i](JSON.parse(text)); }
  catch (e) { return JSON.stringify({error: String(e)}); }
  return JSON.stringify({rows: __emits});
}
function __filter(i, text, req) {
  try { return JSON.stringify({ok: !!__fns[i](JSON.parse(text), JSON.parse(req))}); }
  catch (e) { return JSON.stringify({ok: false}); }
}
function __reduce(i, keys, values) {
  try { return JSON.stringify({value: __fns[i](JSON.parse(keys), JSON.parse(values), false)}); }
  catch (e) { return JSON.stringify({error: String(e)}); }
}
function __validate(i, newDoc, oldDoc, userCtx, secObj) {
  try { __fns[i](JSON.parse(newDoc), JSON.parse(oldDoc), JSON.parse(userCtx), JSON.parse(secObj)); }
  catch (e) {
    if (e && typeof e === "object" && !(e instanceof Error)) { return JSON.stringify({thrown: e}); }
    return JSON.stringify({error: String(e)});
  }
  return "{}";
}
"""


def _quickjs() -> Any:
    try:
        import quickjs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = (
            "JavaScript design functions need the optional QuickJS engine: "
            "pip install couchmapper[js]"
        )
        raise BackendError(500, "js_unavailable", msg) from exc
    return quickjs


def js_available() -> bool:
    """Whether the optional ``quickjs`` package can be imported."""
    try:
        _quickjs()
    except BackendError:
        return False
    return True


class MapRunner:
    """One QuickJS context holding compiled functions; calls are serialised by a lock."""

    def __init__(self) -> None:
        self._context = _quickjs().Context()
        self._context.eval(_PRELUDE)
        self._lock = threading.Lock()

    def compile(self, source: str) -> int:
        """Compile a function; raise ``ValueError`` with the engine's message on failure."""
        with self._lock:
            answer = json.loads(self._context.get("__compile")(source))
        if "error" in answer:
            raise ValueError(answer["error"])
        return int(answer["index"])

    def map(self, index: int, doc: dict[str, Any]) -> list[list[Any]]:
        """Run a compiled map function over one doc; a throwing doc emits nothing."""
        with self._lock:
            answer = json.loads(self._context.get("__map")(index, json.dumps(doc)))
        rows: list[list[Any]] = answer.get("rows", [])
        return rows

    def filter(self, index: int, doc: dict[str, Any], request: dict[str, Any]) -> bool:
        """Run a compiled ``filters`` function over one doc."""
        with self._lock:
            answer = json.loads(
                self._context.get("__filter")(index, json.dumps(doc), json.dumps(request))
            )
        return bool(answer.get("ok"))

    def reduce(self, index: int, keys: list[Any], values: list[Any]) -> Any:
        """Run a compiled JavaScript reduce function (no rereduce: one pass)."""
        with self._lock:
            answer = json.loads(
                self._context.get("__reduce")(index, json.dumps(keys), json.dumps(values))
            )
        if "error" in answer:
            raise BackendError(500, "reduce_error", str(answer["error"]))
        return answer.get("value")

    def validate(self, index: int, *args: Any) -> dict[str, Any]:
        """Run a compiled validate_doc_update; returns what it threw, if anything."""
        texts = [json.dumps(a) for a in args]
        with self._lock:
            answer: dict[str, Any] = json.loads(self._context.get("__validate")(index, *texts))
        return answer


_validators: dict[str, tuple[MapRunner, int]] = {}
_validators_lock = threading.Lock()


def run_validate(
    source: str, new_doc: dict[str, Any], old_doc: dict[str, Any] | None, db_name: str = ""
) -> None:
    """Run one ``validate_doc_update``; raise 403 forbidden / 401 unauthorized as CouchDB."""
    with _validators_lock:
        compiled = _validators.get(source)
        if compiled is None:
            runner = MapRunner()
            compiled = _validators[source] = (runner, runner.compile(source))
    runner, index = compiled
    user_ctx = {"db": db_name, "name": "admin", "roles": ["_admin"]}
    answer = runner.validate(index, new_doc, old_doc, user_ctx, {})
    thrown = answer.get("thrown")
    if isinstance(thrown, dict):
        if "forbidden" in thrown:
            raise BackendError(403, "forbidden", str(thrown["forbidden"]))
        if "unauthorized" in thrown:
            raise BackendError(401, "unauthorized", str(thrown["unauthorized"]))
    if thrown is not None or "error" in answer:
        raise BackendError(500, "render_error", str(answer.get("error", thrown)))


def _must(body: dict[str, Any], key: str, kind: type, label: str) -> None:
    if key in body and not isinstance(body[key], kind):
        name = "object" if kind is dict else "string"
        raise BackendError(400, "invalid_design_doc", f"`{label}` field must have {name} type")


def validate_design_doc(body: dict[str, Any]) -> None:
    """Check a design document like CouchDB (field types, map functions, builtin reduces)."""
    _must(body, "language", str, "language")
    _must(body, "views", dict, "views")
    for key in ("filters", "lists", "shows", "updates", "options"):
        _must(body, key, dict, key)
    _must(body, "validate_doc_update", str, "validate_doc_update")
    language = body.get("language", "javascript")
    views = body.get("views") or {}
    for name, view in views.items():
        if not isinstance(view, dict):
            raise BackendError(400, "invalid_design_doc", f"View {name} must be an object")
        if "map" not in view:
            reason = f"View `{name}` must contain map function"
            raise BackendError(400, "invalid_design_doc", reason)
        if not isinstance(view["map"], str) and language != "query":
            raise BackendError(
                400, "invalid_design_doc", f"`views.{name}.map` field must have string type"
            )
        reduce = view.get("reduce")
        is_builtin = isinstance(reduce, str) and reduce.startswith("_")
        if is_builtin and str(reduce).strip() not in BUILTIN_REDUCES:
            reason = f"`{reduce}` is not a supported reduce function."
            raise BackendError(400, "invalid_design_doc", reason)
        if language == "javascript" and isinstance(view["map"], str) and js_available():
            try:
                MapRunner().compile(view["map"])
            except ValueError as exc:
                reason = (
                    f"Compilation of the map function in the '{name}' view failed: "
                    f"{exc} ({view['map']})"
                )
                raise BackendError(400, "compilation_error", reason) from exc
