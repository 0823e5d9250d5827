"""Mango selectors and CouchDB collation over plain JSON (no classes, no I/O).

Shared by the memory backend (``_find``, ``_index``, views) and the session's read-your-writes
overlay, so a pending document is matched exactly as the server would match it.

The behaviour follows CouchDB 3.5's ``mango_selector``: a selector is first normalised (implicit
``$and`` and ``$eq`` made explicit, field names pushed down to the conditions, negations pushed
to the leaves), then matched. Invalid selectors raise
:class:`~couchmapper.exceptions.QueryError` with CouchDB's own error names and reasons, Erlang
term syntax included (``Bad argument for operator $in: <<65,108,105,99,101>>``).

Public surface:

* ``MISSING``: the value :func:`get_field` returns for a field that does not exist.
* :func:`parse_field`, :func:`get_field`: Mango field paths (``"address.city"``, ``"a\\.b"``,
  ``"results.0.grade"``).
* :func:`normalize_selector`, :func:`compile_selector`, :func:`match`.
* :func:`collate`, :func:`collation_key`: CouchDB view collation (from :mod:`.collation`).
* :func:`sort_docs`: order documents by a Mango ``sort`` spec.

Semantics worth knowing (all recorded from CouchDB 3.5):

* A condition on a missing field is false, whatever the operator (``$ne``, ``$nin`` and
  ``$not`` included); only ``{"$exists": false}`` matches a missing field. A path through a
  non-object (``address.zip`` with ``address: null``) is neither missing nor present: even
  ``$exists: false`` is false there.
* Numeric path segments index into arrays (``"nums.0"``).
* Comparisons use view collation, so ``{"$lt": "z"}`` matches every number and ``null``;
  comparisons on ``_id`` use raw code point order instead.
* ``$in`` / ``$nin`` on an array field test its elements; ``$all: []``, ``$or: []``,
  ``$in: []`` and ``$elemMatch`` / ``$allMatch`` / ``$keyMapMatch`` on an empty container match
  nothing; ``$elemMatch: {}`` matches elements equal to ``{}``.
* ``$regex`` is an unanchored PCRE search over the UTF-8 bytes of string values, run by PCRE
  itself under its match limit: a pattern that backtracks catastrophically gives up (no
  match, as CouchDB's Erlang ``re`` answers) instead of hanging.
* ``$mod`` matches integers only (Erlang ``rem``: the sign follows the dividend); a divisor of
  0 is accepted by validation and fails with ``500 badarith`` once an integer is tested.
* ``$text`` (no text index here) matches every document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from couchmapper._couch.collation import collate, collation_key, raw_collate, raw_key
from couchmapper._couch.erlang import erlang_term
from couchmapper._couch.fields import BAD_PATH, MISSING, get_field, lookup, parse_field
from couchmapper._couch.regex import compile_regex, regex_search
from couchmapper.exceptions import QueryError

__all__ = [
    "MISSING",
    "collate",
    "collation_key",
    "compile_selector",
    "get_field",
    "match",
    "normalize_selector",
    "parse_field",
    "raw_collate",
    "sort_docs",
]

Predicate = Callable[[Any], bool]
DocT = TypeVar("DocT", bound=Mapping[str, Any])


_COMBINATION_OPERATORS = frozenset({"$and", "$or", "$nor"})
_SUBSELECTOR_OPERATORS = frozenset({"$not", "$elemMatch", "$allMatch", "$keyMapMatch"})
_LIST_OPERATORS = frozenset({"$in", "$nin", "$all"})
_COMPARISON_OPERATORS = frozenset({"$lt", "$lte", "$eq", "$ne", "$gte", "$gt"})
_UNSUPPORTED_OPERATORS = frozenset(
    {"$where", "$geoWithin", "$geoIntersects", "$near", "$nearSphere"}
)
_NEGATED = {
    "$lt": "$gte",
    "$lte": "$gt",
    "$eq": "$ne",
    "$ne": "$eq",
    "$gte": "$lt",
    "$gt": "$lte",
    "$in": "$nin",
    "$nin": "$in",
}
# --------------------------------------------------------------------------- Erlang terms


def _bad_arg(operator: str, argument: Any) -> QueryError:
    return QueryError("bad_arg", f"Bad argument for operator {operator}: {erlang_term(argument)}")


def _invalid_operator(operator: str) -> QueryError:
    return QueryError("invalid_operator", f"Invalid operator: {operator}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _erlang_equal(a: Any, b: Any, *, exact: bool) -> bool:
    """Erlang ``=:=`` (``exact``) or ``==`` between EJSON terms: no collation, key order counts."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b and (not exact or isinstance(a, float) == isinstance(b, float))
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(
            _erlang_equal(x, y, exact=exact) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(
            ka == kb and _erlang_equal(va, vb, exact=exact)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return False


# --------------------------------------------------------------------------- normalisation


def _single(node: Mapping[str, Any]) -> tuple[str, Any]:
    ((key, argument),) = node.items()
    return key, argument


def _norm_ops(selector: Any) -> dict[str, Any]:
    """Validate operator arguments; make implicit ``$and`` and ``$eq`` explicit."""
    if not isinstance(selector, Mapping) or not selector:
        return {"$eq": selector}
    if len(selector) > 1:
        return {"$and": [_norm_ops({key: value}) for key, value in selector.items()]}
    key, arg = _single(selector)
    if key in _COMBINATION_OPERATORS:
        if not isinstance(arg, list):
            raise _bad_arg(key, arg)
        return {key: [_norm_ops(item) for item in arg]}
    if key in _SUBSELECTOR_OPERATORS:
        if not isinstance(arg, Mapping):
            raise _bad_arg(key, arg)
        return {key: _norm_ops(arg)}
    if key in _LIST_OPERATORS:
        if not isinstance(arg, list):
            raise _bad_arg(key, arg)
        return {key: arg}
    if key in _COMPARISON_OPERATORS or key == "$default":
        return {key: arg}
    checked = _norm_terminal(key, arg)
    if checked is not None:
        return checked
    if key in _UNSUPPORTED_OPERATORS:
        raise QueryError("not_supported", f"Unsupported operator: {key}")
    if key.startswith("$"):
        raise _invalid_operator(key)
    return {key: _norm_ops(arg)}


def _norm_terminal(key: str, arg: Any) -> dict[str, Any] | None:
    """Validate the argument of a terminal operator with constraints (None: not one of them)."""
    if key == "$exists":
        if not isinstance(arg, bool):
            raise _bad_arg(key, arg)
    elif key == "$type":
        if not isinstance(arg, str):
            raise _bad_arg(key, arg)
    elif key == "$mod":
        if not (isinstance(arg, list) and len(arg) == 2 and all(map(_is_integer, arg))):
            raise _bad_arg(key, arg)
    elif key == "$size":
        if not (_is_integer(arg) and arg >= 0):
            raise _bad_arg(key, arg)
    elif key == "$text":
        if arg is None or not isinstance(arg, str | int | float):
            raise _bad_arg(key, arg)
        return {"$default": {"$text": arg}}
    elif key == "$regex" and isinstance(arg, str):
        # A non-string $regex or $beginsWith falls through to "Invalid operator", as in CouchDB.
        if compile_regex(arg) is None:
            raise _bad_arg(key, arg)
    elif key == "$beginsWith" and isinstance(arg, str):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad_arg(key, arg) from None
    else:
        return None
    return {key: arg}


def _norm_fields(selector: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Push field names down to the conditions (``{"a": {"b": 1}}`` -> ``{"a.b": ...}``)."""
    key, arg = _single(selector)
    if key in _COMBINATION_OPERATORS:
        return {key: [_norm_fields(item, path) for item in arg]}
    if key == "$not":
        return {key: _norm_fields(arg, path)}
    if key in ("$elemMatch", "$allMatch", "$keyMapMatch"):
        # The argument is matched against elements or keys: its own fields start afresh.
        return {path: {key: _norm_fields(arg)}}
    if key == "$default":
        if path == "" and isinstance(arg, Mapping) and list(arg) == ["$text"]:
            return selector
        reason = f"Invalid field normalization on selector: {erlang_term(selector)}"
        raise QueryError("bad_field", reason)
    if key.startswith("$"):
        return {path: selector}
    return _norm_fields(arg, key if path == "" else f"{path}.{key}")


def _norm_negations(selector: dict[str, Any]) -> dict[str, Any]:
    """Push ``$not`` and ``$nor`` down to the leaves with De Morgan's laws."""
    key, arg = _single(selector)
    if key == "$not":
        return _negate(arg)
    if key == "$nor":
        return {"$and": [_negate(item) for item in arg]}
    if key in ("$and", "$or"):
        return {key: [_norm_negations(item) for item in arg]}
    if key in ("$elemMatch", "$allMatch", "$keyMapMatch"):
        return {key: _norm_negations(arg)}
    return selector


def _negate(selector: dict[str, Any]) -> dict[str, Any]:
    key, arg = _single(selector)
    if key == "$not":
        return _norm_negations(arg)
    if key == "$nor":
        return {"$or": [_norm_negations(item) for item in arg]}
    if key == "$and":
        return {"$or": [_negate(item) for item in arg]}
    if key == "$or":
        return {"$and": [_negate(item) for item in arg]}
    if key == "$default":
        raise _bad_arg("$not", selector)
    if key in _NEGATED:
        return {_NEGATED[key]: arg}
    if key == "$exists":
        return {key: not arg}
    if key.startswith("$"):
        return {"$not": selector}
    return {key: _negate(arg)}


def normalize_selector(selector: Any) -> dict[str, Any]:
    """Validate a selector like CouchDB 3.5 and return its normalised form.

    Every node of the result is a one-key object: ``{"$and": [...]}``, ``{"$or": [...]}``,
    ``{"$not": {...}}`` (only where a negation cannot be pushed further), or
    ``{"field.path": {"$operator": argument}}``; the empty selector stays ``{}``. Examples::

        {"name": "Alice"}                  -> {"name": {"$eq": "Alice"}}
        {"address": {"city": "Oslo"}}      -> {"address.city": {"$eq": "Oslo"}}
        {"age": {"$gt": 1, "$lt": 9}}      -> {"$and": [{"age": {"$gt": 1}}, {"age": {"$lt": 9}}]}
        {"$not": {"age": {"$gt": 5}}}      -> {"age": {"$lte": 5}}

    The result may share argument values with ``selector``; neither is modified.

    Args:
        selector: the ``selector`` member of a ``_find`` request (decoded JSON).

    Returns:
        The normalised selector; normalising it again returns an equal selector.

    Raises:
        QueryError: ``invalid_selector_json``, ``bad_arg``, ``invalid_operator``,
            ``not_supported``, ``bad_field`` or ``invalid_selector``, with CouchDB's reasons.
    """
    if not isinstance(selector, Mapping):
        reason = f"Selector must be a JSON object, not: {erlang_term(selector)}"
        raise QueryError("invalid_selector_json", reason)
    if not selector:
        return {}
    normalized = _norm_negations(_norm_fields(_norm_ops(selector)))
    if "" in normalized:
        raise QueryError("invalid_selector", "One or more conditions is missing a field name.")
    return normalized


# --------------------------------------------------------------------------- matching


def _always(_value: Any) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


def _compile(node: Mapping[str, Any], raw: bool) -> Predicate:
    """Build the predicate of one normalised node; ``raw`` selects the ``_id`` comparison."""
    key, arg = _single(node)
    if key == "$and":
        parts = [_compile(item, raw) for item in arg]
        return lambda value: all(part(value) for part in parts)
    if key == "$or":
        # CouchDB 3.5 answers `$or: []` with no documents (mango-combination [8]).
        parts = [_compile(item, raw) for item in arg]
        return lambda value: any(part(value) for part in parts)
    if key == "$not":
        inner = _compile(arg, raw)
        return lambda value: not inner(value)
    if key == "":
        # A condition on the value itself (inside $elemMatch, or an operator under $and).
        return _compile(arg, raw)
    if key == "$default":
        # $text without a text index: CouchDB trusts the (absent) index and matches everything.
        return _always
    if key.startswith("$"):
        return _compile_operator(key, arg, raw)
    return _compile_field(key, arg, raw)


def _compile_field(name: str, condition: Mapping[str, Any], raw: bool) -> Predicate:
    path = parse_field(name)
    inner = _compile(condition, raw or name == "_id")
    # Only this exact condition matches a missing field (mango_selector:match/3).
    matches_missing = len(condition) == 1 and condition.get("$exists") is False

    def field_predicate(value: Any) -> bool:
        found = lookup(value, path)
        if found is MISSING:
            return matches_missing
        if found is BAD_PATH:
            return False
        return inner(found)

    return field_predicate


def _compile_operator(key: str, arg: Any, raw: bool) -> Predicate:
    if key in _COMPARISON_OPERATORS or key in ("$in", "$nin"):
        return _compile_comparison(key, arg, raw)
    if key in ("$elemMatch", "$allMatch", "$keyMapMatch"):
        return _compile_container(key, _compile(arg, raw))
    if key == "$exists":
        # Reached only for a value that exists (missing fields are decided by the field).
        return _always if arg else _never
    if key == "$type":
        return lambda value: _json_type(value) == arg
    if key == "$size":
        return lambda value: isinstance(value, list | tuple) and len(value) == arg
    if key == "$mod":
        return _compile_mod(arg[0], arg[1])
    if key == "$regex" and isinstance(arg, str):
        regex = compile_regex(arg)
        if regex is None:
            raise _bad_arg(key, arg)
        return lambda value: regex_search(regex, value)
    if key == "$beginsWith" and isinstance(arg, str):
        return lambda value: isinstance(value, str) and value.startswith(arg)
    if key == "$all":
        return _compile_all(arg)

    # Operators that normalisation leaves where CouchDB's matcher has no clause for them
    # ($nor under $elemMatch, say): CouchDB fails when a value reaches them.
    def unknown_operator(_value: Any) -> bool:
        raise _invalid_operator(key)

    return unknown_operator


def _compile_comparison(key: str, arg: Any, raw: bool) -> Predicate:
    key_of = raw_key if raw else collation_key
    target = key_of(arg)
    if key == "$eq":
        return lambda value: key_of(value) == target
    if key == "$ne":
        return lambda value: key_of(value) != target
    if key == "$lt":
        return lambda value: key_of(value) < target
    if key == "$lte":
        return lambda value: key_of(value) <= target
    if key == "$gt":
        return lambda value: key_of(value) > target
    if key == "$gte":
        return lambda value: key_of(value) >= target
    targets = {key_of(item) for item in arg}
    if key == "$in":
        # On an array field, $in tests the elements, never the array itself.
        def in_predicate(value: Any) -> bool:
            if isinstance(value, list | tuple):
                return any(key_of(item) in targets for item in value)
            return key_of(value) in targets

        return in_predicate

    def nin_predicate(value: Any) -> bool:
        if isinstance(value, list | tuple):
            return not any(key_of(item) in targets for item in value)
        return key_of(value) not in targets

    return nin_predicate


def _compile_container(key: str, inner: Predicate) -> Predicate:
    if key == "$elemMatch":
        return lambda value: isinstance(value, list | tuple) and any(map(inner, value))
    if key == "$allMatch":
        # An empty array does not match: there is no element to satisfy the condition.
        return lambda value: (
            isinstance(value, list | tuple) and bool(value) and all(map(inner, value))
        )
    return lambda value: isinstance(value, Mapping) and any(map(inner, value))


def _compile_mod(divisor: int, remainder: int) -> Predicate:
    def mod_predicate(value: Any) -> bool:
        if not _is_integer(value):
            return False
        if divisor == 0:
            raise QueryError("unknown_error", "badarith", status=500)
        # Erlang `rem` truncates toward zero: the result has the sign of the dividend.
        result = abs(value) % abs(divisor)
        return bool((-result if value < 0 else result) == remainder)

    return mod_predicate


def _compile_all(args: list[Any]) -> Predicate:
    if not args:
        return _never
    whole = args[0] if len(args) == 1 and isinstance(args[0], list) else None

    def all_predicate(value: Any) -> bool:
        # `{"$all": [[1, 2]]}` also matches the array [1, 2] itself (Erlang ==, not collation).
        if whole is not None and _erlang_equal(whole, value, exact=False):
            return True
        if not isinstance(value, list | tuple):
            return False
        return all(any(_erlang_equal(a, item, exact=True) for item in value) for a in args)

    return all_predicate


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def compile_selector(selector: Any) -> Callable[[Mapping[str, Any]], bool]:
    """Validate and normalise a selector, then build a fast predicate over documents.

    Args:
        selector: a Mango selector (decoded JSON), normalised or not.

    Returns:
        A function that tells whether a document matches. It raises :class:`QueryError` only
        where CouchDB fails at match time: an invalid field name (``"a..b"``) or ``$mod`` with
        divisor 0 meeting an integer.

    Raises:
        QueryError: the selector is invalid (see :func:`normalize_selector`).
    """
    normalized = normalize_selector(selector)
    if not normalized:
        return _always
    try:
        return _compile(normalized, raw=False)
    except QueryError as error:
        # CouchDB meets these errors at match time, so an empty database never reports them.
        failure = error

        def failing(_doc: Mapping[str, Any]) -> bool:
            raise failure

        return failing


def match(selector: Any, doc: Mapping[str, Any]) -> bool:
    """Tell whether ``doc`` matches ``selector`` (use :func:`compile_selector` for many docs).

    Raises:
        QueryError: the selector is invalid.
    """
    return compile_selector(selector)(doc)


# --------------------------------------------------------------------------- sorting


def _parse_sort(sort: Any) -> tuple[list[tuple[str, ...]], bool]:
    """Validate a Mango sort spec like mango_sort:new; return (paths, descending)."""
    if not isinstance(sort, list | tuple):
        reason = f"Sort must be an array of sort specs, not: {erlang_term(sort, pretty=True)}"
        raise QueryError("invalid_sort_json", reason)
    fields: list[tuple[str, str]] = []
    for spec in sort:
        if isinstance(spec, str) and spec:
            fields.append((spec, "asc"))
            continue
        if isinstance(spec, Mapping) and len(spec) == 1:
            name, direction = _single(spec)
            if isinstance(name, str) and direction in ("asc", "desc"):
                fields.append((name, direction))
                continue
        reason = f"Invalid sort field: {erlang_term(spec, pretty=True)}"
        raise QueryError("invalid_sort_field", reason)
    directions = {direction for _, direction in fields}
    if len(directions) > 1:
        reason = "Sorts currently only support a single direction for all fields."
        raise QueryError("unsupported_mixed_sort", reason)
    return [parse_field(name) for name, _ in fields], directions == {"desc"}


def sort_docs(docs: Iterable[DocT], sort: Sequence[Any]) -> list[DocT]:
    """Order documents by a Mango ``sort`` spec, as CouchDB's index would return them.

    ``sort`` is a list of field names (ascending) or ``{"field": "asc" | "desc"}`` objects.
    Values compare by view collation; equal keys keep ``_id`` order (raw code points), and a
    descending sort reverses the whole order, ties included, as a reversed view does. A sort on
    ``_id`` alone is served by ``_all_docs`` in CouchDB and uses raw code point order.

    A document that lacks one of the sort fields is left out: CouchDB can only sort through a
    JSON index on those fields, and such an index holds only documents that have them all.

    Args:
        docs: the documents (already filtered by the selector).
        sort: the Mango sort spec; an empty spec keeps the given order.

    Returns:
        The sorted documents.

    Raises:
        QueryError: ``invalid_sort_json``, ``invalid_sort_field`` or ``unsupported_mixed_sort``
            with CouchDB's reasons.
    """
    paths, descending = _parse_sort(sort)
    if not paths:
        return list(docs)
    key_of = raw_key if paths == [("_id",)] else collation_key
    keyed: list[tuple[tuple[Any, ...], DocT]] = []
    for doc in docs:
        values = [lookup(doc, path) for path in paths]
        if any(value is MISSING or value is BAD_PATH for value in values):
            continue
        doc_id = doc.get("_id")
        keyed.append(((*map(key_of, values), raw_key(doc_id)), doc))
    keyed.sort(key=lambda pair: pair[0], reverse=descending)
    return [doc for _, doc in keyed]
