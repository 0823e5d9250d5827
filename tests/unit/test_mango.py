"""Mango selectors, collation and sorting, checked by hand and against CouchDB 3.5 transcripts."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from _replay import TRANSCRIPTS

from couchmapper import mango
from couchmapper._couch.collation import raw_key
from couchmapper.exceptions import QueryError

# Errors that CouchDB raises while validating the selector (mango_selector, mango_opts)...
SELECTOR_ERRORS = frozenset(
    {"bad_arg", "invalid_operator", "not_supported", "invalid_selector", "bad_field"}
)
# ... and while validating the sort (mango_sort). Other 400s concern the request or the index.
SORT_ERRORS = frozenset({"invalid_sort_json", "invalid_sort_field", "unsupported_mixed_sort"})

PEOPLE: list[dict[str, Any]] = [
    {"_id": "alice", "name": "Alice", "age": 30, "tags": ["admin", "dev"], "nums": [1, 2, 3]},
    {"_id": "bob", "name": "Bob", "age": 25, "tags": ["dev"], "address": {"city": "Bergen"}},
    {"_id": "carol", "name": "carol", "age": 35, "score": None, "tags": [], "address": None},
    {"_id": "dave", "name": "Dave", "age": "40", "emails": {"work": "d@w"}},
]


def load(name: str) -> list[dict[str, Any]]:
    """Read one transcript file of ``tests/transcripts``."""
    cases: list[dict[str, Any]] = json.loads((TRANSCRIPTS / name).read_text(encoding="utf-8"))
    return cases


def ids(selector: Any, docs: list[dict[str, Any]] = PEOPLE) -> set[str]:
    """The ids of the docs that match."""
    predicate = mango.compile_selector(selector)
    return {doc["_id"] for doc in docs if predicate(doc)}


def error_of(selector: Any) -> tuple[int | None, str, str]:
    """The (status, error, reason) that normalising ``selector`` raises."""
    with pytest.raises(QueryError) as info:
        mango.normalize_selector(selector)
    return info.value.status, info.value.error, info.value.reason


# --------------------------------------------------------------------------- fields


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("a\\.b.c", ("a.b", "c")),
        ("dotted\\.key", ("dotted.key",)),
        ("a\\b", ("ab",)),
        ("a\\..b", ("a.", "b")),
    ],
)
def test_parse_field(name: str, path: tuple[str, ...]) -> None:
    """Field names split on unescaped dots and lose their backslashes."""
    assert mango.parse_field(name) == path


@pytest.mark.parametrize("name", ["", "a..b", ".a", "a.", "a\\.b."])
def test_parse_field_rejects_empty_segments(name: str) -> None:
    """An empty path segment is CouchDB's 400 invalid_field_name naming the field."""
    with pytest.raises(QueryError) as info:
        mango.parse_field(name)
    assert (info.value.status, info.value.error) == (400, "invalid_field_name")
    assert info.value.reason == f"Invalid field name: {name}"


def test_get_field_walks_objects_and_array_indexes() -> None:
    """Objects are walked by key, arrays by numeric segment; anything else is MISSING."""
    doc = {"a": {"b": [10, {"c": None}]}, "s": "text"}
    assert mango.get_field(doc, ("a", "b", "0")) == 10
    assert mango.get_field(doc, ("a", "b", "1", "c")) is None
    assert mango.get_field(doc, ("a", "b", "+1", "c")) is None
    assert mango.get_field(doc, ("a", "b", "2")) is mango.MISSING
    assert mango.get_field(doc, ("a", "x")) is mango.MISSING
    assert mango.get_field(doc, ("s", "0")) is mango.MISSING
    assert mango.get_field(doc, ("a", "b", "x")) is mango.MISSING
    assert not mango.MISSING


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("selector", "normalized"),
    [
        ({}, {}),
        ({"name": "Alice"}, {"name": {"$eq": "Alice"}}),
        ({"address": {"city": "Oslo"}}, {"address.city": {"$eq": "Oslo"}}),
        ({"a": {}}, {"a": {"$eq": {}}}),
        (
            {"age": {"$gt": 1, "$lt": 9}},
            {"$and": [{"age": {"$gt": 1}}, {"age": {"$lt": 9}}]},
        ),
        ({"$not": {"age": {"$gt": 5}}}, {"age": {"$lte": 5}}),
        (
            {"$nor": [{"a": 1}, {"b": {"$in": [2]}}]},
            {"$and": [{"a": {"$ne": 1}}, {"b": {"$nin": [2]}}]},
        ),
        ({"a": {"$not": {"$exists": True}}}, {"a": {"$exists": False}}),
        ({"a": {"$not": {"$regex": "x"}}}, {"a": {"$not": {"$regex": "x"}}}),
        (
            {"age": {"$or": [{"$lt": 26}, {"$gt": 40}]}},
            {"$or": [{"age": {"$lt": 26}}, {"age": {"$gt": 40}}]},
        ),
        ({"tags": {"$elemMatch": {"$eq": "ops"}}}, {"tags": {"$elemMatch": {"": {"$eq": "ops"}}}}),
        ({"r": {"$elemMatch": {}}}, {"r": {"$elemMatch": {"": {"$eq": {}}}}}),
        ({"$text": "alice"}, {"$default": {"$text": "alice"}}),
        ({"a": {"$eq": {"$gt": 1}}}, {"a": {"$eq": {"$gt": 1}}}),
    ],
)
def test_normalize_selector(selector: dict[str, Any], normalized: dict[str, Any]) -> None:
    """Normalisation makes $and/$eq explicit, joins nested fields and pushes negations down."""
    assert mango.normalize_selector(selector) == normalized
    assert mango.normalize_selector(normalized) == normalized


@pytest.mark.parametrize(
    ("selector", "error", "reason"),
    [
        (["a"], "invalid_selector_json", "Selector must be a JSON object, not: [<<97>>]"),
        ("x", "invalid_selector_json", "Selector must be a JSON object, not: <<120>>"),
        ({"$and": {"a": 1}}, "bad_arg", "Bad argument for operator $and: {[{<<97>>,1}]}"),
        ({"$or": 1}, "bad_arg", "Bad argument for operator $or: 1"),
        ({"$nor": None}, "bad_arg", "Bad argument for operator $nor: null"),
        ({"a": {"$not": "x"}}, "bad_arg", "Bad argument for operator $not: <<120>>"),
        ({"a": {"$in": "x"}}, "bad_arg", "Bad argument for operator $in: <<120>>"),
        ({"a": {"$nin": {}}}, "bad_arg", "Bad argument for operator $nin: {[]}"),
        ({"a": {"$all": True}}, "bad_arg", "Bad argument for operator $all: true"),
        ({"a": {"$exists": 1}}, "bad_arg", "Bad argument for operator $exists: 1"),
        ({"a": {"$type": 5}}, "bad_arg", "Bad argument for operator $type: 5"),
        ({"a": {"$mod": [2]}}, "bad_arg", "Bad argument for operator $mod: [2]"),
        ({"a": {"$mod": [2.5, 0]}}, "bad_arg", "Bad argument for operator $mod: [2.5,0]"),
        ({"a": {"$mod": [True, 0]}}, "bad_arg", "Bad argument for operator $mod: [true,0]"),
        ({"a": {"$size": -1}}, "bad_arg", "Bad argument for operator $size: -1"),
        ({"a": {"$size": 1e20}}, "bad_arg", "Bad argument for operator $size: 1.0e20"),
        ({"a": {"$size": "2"}}, "bad_arg", "Bad argument for operator $size: <<50>>"),
        ({"a": {"$regex": "("}}, "bad_arg", "Bad argument for operator $regex: <<40>>"),
        ({"a": {"$regex": 5}}, "invalid_operator", "Invalid operator: $regex"),
        ({"a": {"$beginsWith": []}}, "invalid_operator", "Invalid operator: $beginsWith"),
        ({"a": {"$elemMatch": []}}, "bad_arg", "Bad argument for operator $elemMatch: []"),
        ({"a": {"$allMatch": 1}}, "bad_arg", "Bad argument for operator $allMatch: 1"),
        (
            {"a": {"$keyMapMatch": "k"}},
            "bad_arg",
            "Bad argument for operator $keyMapMatch: <<107>>",
        ),
        ({"$text": None}, "bad_arg", "Bad argument for operator $text: null"),
        ({"a": {"$foo": 1}}, "invalid_operator", "Invalid operator: $foo"),
        ({"$where": "1"}, "not_supported", "Unsupported operator: $where"),
        ({"a": {"$near": 1}}, "not_supported", "Unsupported operator: $near"),
        ({"$gt": 5}, "invalid_selector", "One or more conditions is missing a field name."),
        ({"": 5}, "invalid_selector", "One or more conditions is missing a field name."),
        (
            {"a": {"$text": "x"}},
            "bad_field",
            "Invalid field normalization on selector: "
            "{[{<<36,100,101,102,97,117,108,116>>,{[{<<36,116,101,120,116>>,<<120>>}]}}]}",
        ),
        (
            {"$not": {"$text": "x"}},
            "bad_arg",
            "Bad argument for operator $not: "
            "{[{<<36,100,101,102,97,117,108,116>>,{[{<<36,116,101,120,116>>,<<120>>}]}}]}",
        ),
    ],
)
def test_invalid_selectors(selector: Any, error: str, reason: str) -> None:
    """Invalid selectors raise CouchDB's 400 error name and reason (Erlang term syntax)."""
    assert error_of(selector) == (400, error, reason)


def test_errors_inside_combinations_are_found() -> None:
    """Validation reaches into $and, $or, $not, $elemMatch and nested fields."""
    assert error_of({"$or": [{"a": 1}, {"b": {"$size": "x"}}]})[1] == "bad_arg"
    assert error_of({"a": {"b": {"$bogus": 1}}})[1] == "invalid_operator"
    assert error_of({"a": {"$elemMatch": {"$in": 1}}})[1] == "bad_arg"


# --------------------------------------------------------------------------- operators


def test_eq_uses_collation_and_types() -> None:
    """$eq compares by collation: 1 == 1.0, "40" != 40, accents fold only when canonical."""
    docs: list[dict[str, Any]] = [
        {"_id": "i", "v": 1},
        {"_id": "f", "v": 1.0},
        {"_id": "s", "v": "1"},
    ]
    assert ids({"v": 1}, docs) == {"i", "f"}
    assert ids({"v": "1"}, docs) == {"s"}
    accents = [
        {"_id": "nfc", "v": "\u00e9"},
        {"_id": "nfd", "v": "e\u0301"},
        {"_id": "e", "v": "e"},
    ]
    assert ids({"v": "\u00e9"}, accents) == {"nfc", "nfd"}
    assert ids({"v": "A"}, [{"_id": "a", "v": "a"}]) == set()


def test_eq_arrays_and_objects() -> None:
    """$eq on an array or object compares the whole value."""
    assert ids({"tags": {"$eq": ["dev"]}}) == {"bob"}
    assert ids({"tags": "dev"}) == set()
    assert ids({"address": {"$eq": {"city": "Bergen"}}}) == {"bob"}
    assert ids({"address": {"city": "Bergen"}}) == {"bob"}


def test_conditions_on_missing_fields_are_false() -> None:
    """$ne, $nin and $not do not match a missing field; only $exists: false does."""
    assert ids({"score": {"$ne": 1}}) == {"carol"}
    assert ids({"score": {"$nin": [1]}}) == {"carol"}
    assert ids({"score": {"$not": {"$type": "string"}}}) == {"carol"}
    assert ids({"score": {"$exists": False}}) == {"alice", "bob", "dave"}
    assert ids({"score": {"$exists": True}}) == {"carol"}
    assert ids({"score": None}) == {"carol"}


def test_paths_through_scalars_are_neither_missing_nor_present() -> None:
    """address.city with address null matches neither $exists true nor false."""
    assert ids({"address.city": {"$exists": True}}) == {"bob"}
    assert ids({"address.city": {"$exists": False}}) == {"alice", "dave"}


def test_range_operators_follow_collation_across_types() -> None:
    """$lt "z" matches numbers and number-like strings; $gt null skips only null."""
    assert ids({"age": {"$gt": 30}}) == {"carol", "dave"}
    assert ids({"age": {"$gte": 30, "$lt": 40}}) == {"alice", "carol"}
    assert ids({"age": {"$lt": "z"}}) == {"alice", "bob", "carol", "dave"}
    assert ids({"age": {"$lte": 25}}) == {"bob"}
    assert ids({"name": {"$gt": "b"}}) == {"bob", "carol", "dave"}
    assert ids({"name": {"$lt": "D"}}) == {"alice", "bob", "carol"}


def test_id_comparisons_use_raw_order() -> None:
    """On _id, comparisons are by code point: "Z" < "a" and "é" > "z"."""
    docs = [{"_id": x} for x in ("Z", "a", "z", "\u00e9")]
    assert ids({"_id": {"$gt": "Z"}}, docs) == {"a", "z", "\u00e9"}
    assert ids({"_id": {"$gt": "z"}}, docs) == {"\u00e9"}
    assert ids({"_id": {"$lt": "a"}}, docs) == {"Z"}
    # Erlang term order puts every string after objects and arrays.
    assert ids({"_id": {"$gt": {}}}, docs) == {"Z", "a", "z", "\u00e9"}
    assert ids({"name": {"$gt": {}}}) == set()


def test_in_and_nin() -> None:
    """$in/$nin test scalar values and the elements of array values."""
    assert ids({"name": {"$in": ["Alice", "Bob", "Nobody"]}}) == {"alice", "bob"}
    assert ids({"tags": {"$in": ["admin"]}}) == {"alice"}
    assert ids({"tags": {"$in": [["dev"]]}}) == set()
    assert ids({"name": {"$in": []}}) == set()
    assert ids({"tags": {"$nin": ["dev"]}}) == {"carol"}
    assert ids({"age": {"$nin": [30, 25]}}) == {"carol", "dave"}
    assert ids({"age": {"$nin": []}}) == {"alice", "bob", "carol", "dave"}


def test_nin_matches_null() -> None:
    """$nin matches a field whose value is null (CouchDB; pouchdb does not)."""
    assert ids({"score": {"$nin": [1, 2]}}) == {"carol"}


def test_type_and_size() -> None:
    """$type names JSON types; $size counts array elements only."""
    assert ids({"age": {"$type": "number"}}) == {"alice", "bob", "carol"}
    assert ids({"age": {"$type": "string"}}) == {"dave"}
    assert ids({"age": {"$type": "integer"}}) == set()
    assert ids({"address": {"$type": "object"}}) == {"bob"}
    assert ids({"address": {"$type": "null"}}) == {"carol"}
    assert ids({"tags": {"$type": "array"}}) == {"alice", "bob", "carol"}
    assert ids({"name": {"$type": "boolean"}}) == set()
    assert ids({"tags": {"$size": 2}}) == {"alice"}
    assert ids({"tags": {"$size": 0}}) == {"carol"}
    assert ids({"name": {"$size": 5}}) == set()


def test_mod_follows_erlang_rem() -> None:
    """$mod matches integers only, with the remainder's sign following the dividend."""
    docs = [
        {"_id": "p", "v": 7},
        {"_id": "n", "v": -7},
        {"_id": "f", "v": 7.0},
        {"_id": "b", "v": True},
    ]
    assert ids({"v": {"$mod": [5, 2]}}, docs) == {"p"}
    assert ids({"v": {"$mod": [5, -2]}}, docs) == {"n"}
    assert ids({"v": {"$mod": [-5, 2]}}, docs) == {"p"}
    assert ids({"v": {"$mod": [5, 3]}}, docs) == set()


def test_mod_zero_divisor_fails_like_couchdb() -> None:
    """$mod [0, r] passes validation and fails with 500 badarith when it meets an integer."""
    predicate = mango.compile_selector({"v": {"$mod": [0, 1]}})
    assert predicate({"v": "x"}) is False
    with pytest.raises(QueryError) as info:
        predicate({"v": 3})
    assert (info.value.status, info.value.error, info.value.reason) == (
        500,
        "unknown_error",
        "badarith",
    )


def test_regex_is_an_unanchored_pcre_search_on_strings() -> None:
    """$regex searches strings only; PCRE (?i) and named groups work."""
    assert ids({"name": {"$regex": "ob"}}) == {"bob"}
    assert ids({"name": {"$regex": "^[A-C]"}}) == {"alice", "bob"}
    assert ids({"name": {"$regex": "(?i)^c"}}) == {"carol"}
    assert ids({"age": {"$regex": "4"}}) == {"dave"}
    assert ids({"tags": {"$regex": "dev"}}) == set()
    assert ids({"name": {"$regex": "(?<first>A)lice\\z"}}) == {"alice"}
    assert ids({"name": {"$regex": "Bob\\Z"}}, [{"_id": "x", "name": "Bob\n"}]) == {"x"}


def test_regex_matches_bytes_like_erlang() -> None:
    """Without Unicode mode, "." matches one UTF-8 byte, so "^.$" misses "é"."""
    docs = [{"_id": "e", "v": "\u00e9"}]
    assert ids({"v": {"$regex": "^.$"}}, docs) == set()
    assert ids({"v": {"$regex": "^..$"}}, docs) == {"e"}
    assert ids({"v": {"$regex": "\u00e9"}}, docs) == {"e"}


def test_begins_with() -> None:
    """$beginsWith is a case-sensitive prefix test on strings."""
    assert ids({"name": {"$beginsWith": "A"}}) == {"alice"}
    assert ids({"name": {"$beginsWith": "a"}}) == set()
    assert ids({"_id": {"$beginsWith": "c"}}) == {"carol"}
    assert ids({"age": {"$beginsWith": "4"}}) == {"dave"}


def test_all() -> None:
    """$all needs every argument in the array; [] matches nothing; [[...]] matches the array."""
    assert ids({"tags": {"$all": ["dev", "admin"]}}) == {"alice"}
    assert ids({"tags": {"$all": []}}) == set()
    assert ids({"tags": {"$all": [["dev"]]}}) == {"bob"}
    assert ids({"name": {"$all": ["Alice"]}}) == set()
    # Membership is exact (Erlang =:=), not collation: 1.0 is not a member of [1, 2, 3].
    assert ids({"nums": {"$all": [1.0]}}) == set()
    assert ids({"nums": {"$all": [1, 3]}}) == {"alice"}


def test_elem_match_all_match_key_map_match() -> None:
    """$elemMatch/$allMatch test elements, $keyMapMatch object keys; empty containers fail."""
    docs: list[dict[str, Any]] = [
        {"_id": "a", "r": [{"s": "math", "g": 90}, {"s": "art", "g": 40}], "m": {"x": 1}},
        {"_id": "b", "r": [{"s": "math", "g": 60}], "m": {}},
        {"_id": "c", "r": [], "m": []},
        {"_id": "d", "r": [{}], "m": {"y": 1, "x": 2}},
    ]
    assert ids({"r": {"$elemMatch": {"s": "math", "g": {"$gt": 80}}}}, docs) == {"a"}
    assert ids({"r": {"$elemMatch": {}}}, docs) == {"d"}
    assert ids({"r": {"$allMatch": {"g": {"$gt": 50}}}}, docs) == {"b"}
    assert ids({"r": {"$allMatch": {"g": {"$exists": False}}}}, docs) == {"d"}
    assert ids({"m": {"$keyMapMatch": {"$eq": "x"}}}, docs) == {"a", "d"}
    assert ids({"m": {"$keyMapMatch": {"$eq": "y"}}}, docs) == {"d"}


def test_combinations() -> None:
    """$and, $or, $nor and $not combine; $and: [] is true, $or: [] matches nothing."""
    assert ids({"$and": [{"age": {"$gt": 26}}, {"tags": {"$size": 0}}]}) == {"carol"}
    assert ids({"$or": [{"name": "Alice"}, {"age": {"$lt": 26}}]}) == {"alice", "bob"}
    assert ids({"$nor": [{"name": "Alice"}, {"name": "Bob"}]}) == {"carol", "dave"}
    assert ids({"$not": {"name": "Alice"}}) == {"bob", "carol", "dave"}
    assert ids({"name": {"$not": {"$regex": "^[AB]"}}}) == {"carol", "dave"}
    assert ids({"$and": []}) == {"alice", "bob", "carol", "dave"}
    assert ids({"$or": []}) == set()
    assert ids({}) == {"alice", "bob", "carol", "dave"}


def test_text_matches_everything() -> None:
    """$text without a text index matches every document, as CouchDB's _find does."""
    assert ids({"$text": "anything"}) == {"alice", "bob", "carol", "dave"}


def test_invalid_field_name_fails_at_match_time() -> None:
    """An empty path segment is reported when a document is matched, not at validation."""
    predicate = mango.compile_selector({"a..b": 1})
    with pytest.raises(QueryError) as info:
        predicate({"_id": "x"})
    assert (info.value.status, info.value.error) == (400, "invalid_field_name")


def test_operators_normalisation_leaves_inside_elem_match_fail_at_match_time() -> None:
    """$nor under $elemMatch is not rewritten, and CouchDB's matcher rejects it on contact."""
    selector = {"r": {"$elemMatch": {"$nor": [{"s": "math"}]}}}
    assert mango.normalize_selector(selector) == {
        "r": {"$elemMatch": {"$nor": [{"s": {"$eq": "math"}}]}}
    }
    predicate = mango.compile_selector(selector)
    assert predicate({"r": []}) is False
    with pytest.raises(QueryError) as info:
        predicate({"r": [{"s": "art"}]})
    assert (info.value.error, info.value.reason) == ("invalid_operator", "Invalid operator: $nor")


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("[]x]", "]", True),
        ("[^]x]", "]", False),
        ("a\\e", "a\x1b", True),
        ("^a\\h+b$", "a \tb", True),
        ("(?<n>x)(?P=n)", "xx", True),
        ("(?=x)", "yx", True),
    ],
)
def test_regex_pcre_syntax(pattern: str, value: str, matches: bool) -> None:
    """PCRE spellings that Python writes differently still work."""
    assert mango.match({"v": {"$regex": pattern}}, {"v": value}) is matches


def test_match_is_compile_selector() -> None:
    """match() gives the compiled predicate's answer."""
    assert mango.match({"name": "Bob"}, PEOPLE[1]) is True
    assert mango.match({"name": "Bob"}, PEOPLE[0]) is False


# --------------------------------------------------------------------------- sorting


def test_sort_docs_orders_by_collation_and_drops_docs_without_the_field() -> None:
    """sort_docs sorts by view collation and leaves out docs lacking a sort field."""
    docs = [*PEOPLE, {"_id": "eve"}]
    assert [d["_id"] for d in mango.sort_docs(docs, ["age"])] == ["bob", "alice", "carol", "dave"]
    assert [d["_id"] for d in mango.sort_docs(docs, [{"age": "desc"}])] == [
        "dave",
        "carol",
        "alice",
        "bob",
    ]
    assert [d["_id"] for d in mango.sort_docs(docs, ["name"])] == ["alice", "bob", "carol", "dave"]
    assert mango.sort_docs(docs, []) == docs


def test_sort_docs_ties_and_id_order() -> None:
    """Equal keys keep raw _id order (reversed when descending); _id alone sorts raw."""
    docs = [{"_id": "b", "k": 1}, {"_id": "a", "k": 1.0}, {"_id": "Z", "k": 0}]
    assert [d["_id"] for d in mango.sort_docs(docs, ["k"])] == ["Z", "a", "b"]
    assert [d["_id"] for d in mango.sort_docs(docs, [{"k": "desc"}])] == ["b", "a", "Z"]
    assert [d["_id"] for d in mango.sort_docs(docs, ["_id"])] == ["Z", "a", "b"]


@pytest.mark.parametrize(
    ("sort", "error", "reason"),
    [
        ("x", "invalid_sort_json", 'Sort must be an array of sort specs, not: <<"x">>'),
        ([{"age": "up"}], "invalid_sort_field", 'Invalid sort field: {[{<<"age">>,<<"up">>}]}'),
        ([""], "invalid_sort_field", "Invalid sort field: <<>>"),
        ([5], "invalid_sort_field", "Invalid sort field: 5"),
        (
            [{"a": "asc"}, {"b": "desc"}],
            "unsupported_mixed_sort",
            "Sorts currently only support a single direction for all fields.",
        ),
    ],
)
def test_sort_errors(sort: Any, error: str, reason: str) -> None:
    """Bad sort specs raise CouchDB's errors."""
    with pytest.raises(QueryError) as info:
        mango.sort_docs(PEOPLE, sort)
    assert (info.value.status, info.value.error, info.value.reason) == (400, error, reason)


# --------------------------------------------------------------------------- collation


ORDERED: list[Any] = [
    None,
    False,
    True,
    -1,
    0,
    1,
    1.5,
    2,
    10,
    1e10,
    "",
    " ",
    "_",
    "-",
    ",",
    "!",
    "'",
    "(",
    "@",
    "&",
    "%",
    "`",
    "^",
    "+",
    "<",
    "|",
    "~",
    "\U0001f600",
    "$",
    "1",
    "10",
    "2",
    "a",
    "A",
    "aa",
    "b",
    "B",
    "ba",
    "e",
    "\u00e9",
    "f",
    "\u00df",
    "z",
    "Z",
    "\u65e5\u672c",
    [],
    [None],
    [1],
    [1, 2],
    ["a"],
    [[]],
    {},
    {"a": 1},
    {"a": 1, "b": 2},
    {"a": 2},
    {"b": 1},
]


def test_collate_total_order_on_known_values() -> None:
    """collate and collation_key agree with CouchDB's documented order."""
    shuffled = ORDERED[:]
    random.Random(5).shuffle(shuffled)
    assert sorted(shuffled, key=mango.collation_key) == ORDERED
    for smaller, larger in itertools.pairwise(ORDERED):
        assert mango.collate(smaller, larger) == -1
        assert mango.collate(larger, smaller) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 1.0), ("\u00e9", "e\u0301"), ([1, "\u00e9"], [1.0, "e\u0301"]), ({"a": 1}, {"a": 1.0})],
)
def test_collate_equal_values(a: Any, b: Any) -> None:
    """Numerically equal numbers and canonically equivalent strings collate equal."""
    assert mango.collate(a, b) == 0
    assert mango.collation_key(a) == mango.collation_key(b)


def test_collation_key_rejects_non_json() -> None:
    """Values that are not JSON cannot be collated."""
    with pytest.raises(TypeError):
        mango.collation_key(object())
    with pytest.raises(TypeError):
        raw_key({1, 2})


def test_raw_collate_is_erlang_term_order() -> None:
    """Raw order: numbers < atoms (false < null < true) < objects < arrays < strings."""
    values: list[Any] = [0, 2.5, False, None, True, {}, {"a": 1}, [], [1], "A", "a", "\u00e9"]
    assert sorted(reversed(values), key=raw_key) == values
    assert mango.raw_collate(1, 1.0) == 0


# --------------------------------------------------------------------------- transcripts


def _docs_written(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Replay the document writes of a case: live, non-design docs by id."""
    docs: dict[str, dict[str, Any]] = {}
    for step in steps:
        request = step["request"]
        if step["couchdb"]["status"] not in (200, 201, 202):
            continue
        written: list[dict[str, Any]] = []
        if request["method"] == "POST" and request["path"] == "_bulk_docs":
            written = request["body"]["docs"]
        elif request["method"] == "PUT" and isinstance(request.get("body"), dict):
            written = [{"_id": request["path"], **request["body"]}]
        for doc in written:
            if doc.get("_deleted") or doc["_id"].startswith("_design/"):
                docs.pop(doc["_id"], None)
            else:
                docs[doc["_id"]] = doc
    return docs


def _find_cases() -> Iterator[Any]:
    """Every _find step of 06-mango.json that selector matching or sorting can decide."""
    for case in load("06-mango.json"):
        for number, step in enumerate(case["steps"], 1):
            request, answer = step["request"], step["couchdb"]
            body = request.get("body")
            if request["path"] != "_find" or not isinstance(body, dict) or "selector" not in body:
                continue
            if "bookmark" in body:
                continue  # paging state lives in the server
            if answer["status"] != 200:
                error = answer["body"]["error"]
                if error not in SELECTOR_ERRORS | SORT_ERRORS and answer["status"] != 500:
                    continue  # a request option or index planning error, not the selector
            docs = _docs_written(case["steps"][: number - 1])
            yield pytest.param(body, answer, docs, id=f"{case['name']}[{number}]")


@pytest.mark.parametrize(("body", "answer", "docs"), list(_find_cases()))
def test_find_transcript(
    body: dict[str, Any], answer: dict[str, Any], docs: dict[str, dict[str, Any]]
) -> None:
    """match/sort_docs select exactly the documents CouchDB 3.5 returned (or its error)."""
    status, reply = answer["status"], answer["body"]
    if status != 200:
        with pytest.raises(QueryError) as info:
            predicate = mango.compile_selector(body["selector"])
            matched = [doc for doc in docs.values() if predicate(doc)]
            mango.sort_docs(matched, body.get("sort", []))
        assert (info.value.status, info.value.error, info.value.reason) == (
            status,
            reply["error"],
            reply["reason"],
        )
        return
    predicate = mango.compile_selector(body["selector"])
    # Without an index CouchDB scans _all_docs, in raw id order.
    matched = sorted((d for d in docs.values() if predicate(d)), key=lambda d: raw_key(d["_id"]))
    returned = reply["docs"]
    if "sort" in body:
        ordered = mango.sort_docs(matched, body["sort"])
        fields = body.get("fields") or ["_id"]
        assert [[doc.get(f) for f in fields] for doc in ordered] == [
            [doc.get(f) for f in fields] for doc in returned
        ]
    elif "limit" in body or "skip" in body or len(returned) == 25:
        skip = body.get("skip", 0)
        expected = [doc["_id"] for doc in matched][skip : skip + body.get("limit", 25)]
        assert [doc["_id"] for doc in returned] == expected
    elif all("_id" in doc for doc in returned):
        assert {doc["_id"] for doc in matched} == {doc["_id"] for doc in returned}
    else:
        # `fields` left _id out of the answer: only the number of matches can be compared.
        assert len(matched) == len(returned)


def _view_rows(case_name: str, step_number: int) -> tuple[list[Any], list[str], dict[str, Any]]:
    """The seed (key, id) pairs, the recorded row ids and the query of a view step."""
    case = next(c for c in load("07-views.json") if c["name"] == case_name)
    docs = _docs_written(case["steps"])
    seed = [(doc["k"], doc["_id"]) for doc in docs.values() if "k" in doc]
    step = case["steps"][step_number - 1]
    recorded = [row["id"] for row in step["couchdb"]["body"]["rows"]]
    query = (
        {k: json.loads(v) if isinstance(v, str) else v for k, v in step["request"]["query"].items()}
        if "query" in step["request"]
        else {}
    )
    return seed, recorded, query


def _view_query(seed: list[Any], query: dict[str, Any]) -> list[str]:
    """Answer a view query over the seed with our collation (rows sort by key, then raw id)."""
    descending = query.get("descending", False)
    rows = sorted(
        seed, key=lambda r: (mango.collation_key(r[0]), raw_key(r[1])), reverse=descending
    )
    out = []
    for key, doc_id in rows:
        if "key" in query and mango.collate(key, query["key"]) != 0:
            continue
        start = query.get("startkey")
        if start is not None or "startkey" in query:
            order = mango.collate(key, start)
            if (order < 0 and not descending) or (order > 0 and descending):
                continue
        if "endkey" in query:
            order = mango.collate(key, query["endkey"])
            inclusive = query.get("inclusive_end", True)
            beyond = order > 0 if not descending else order < 0
            if beyond or (order == 0 and not inclusive):
                continue
        out.append(doc_id)
    return out


VIEW_STEPS = [
    ("view-collation-order", 3),
    ("view-collation-descending", 3),
    *[("view-collation-ranges", n) for n in range(3, 8)],
    *[("view-key", n) for n in range(3, 10)],
    ("view-inclusive-end", 3),
    ("view-inclusive-end", 4),
]


@pytest.mark.parametrize(
    ("case_name", "step_number"), VIEW_STEPS, ids=[f"{c}[{n}]" for c, n in VIEW_STEPS]
)
def test_view_collation_transcript(case_name: str, step_number: int) -> None:
    """Our collation gives CouchDB's recorded view rows: order, ranges and key= lookups."""
    seed, recorded, query = _view_rows(case_name, step_number)
    assert _view_query(seed, query) == recorded


def test_all_docs_id_order_transcript() -> None:
    """raw_key orders document ids like _all_docs (04/alldocs-id-collation)."""
    case = next((c for c in load("04-all-docs.json") if c["name"] == "alldocs-id-collation"), None)
    assert case is not None, "04/alldocs-id-collation is missing from tests/transcripts"
    recorded = [row["id"] for row in case["steps"][1]["couchdb"]["body"]["rows"]]
    assert sorted(recorded[::-1], key=raw_key) == recorded


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("pattern", "hostile", "matching"),
    [
        (r"(a+)+$", "a" * 33 + "!", "aa"),
        (r"(a|aa)+$", "a" * 40 + "!", "aa"),
        (r"(a|a)*$", "a" * 40 + "!", "a"),
        (r"(\d+)*[a-z]", "1" * 40 + "!", "12a"),
        (r"^(\w+\s?)*$", "word " * 10 + "!", "word word"),
        (r"^([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@)[a-z0-9]+$", "a" * 40 + "!", "ab@x"),
    ],
)
def test_catastrophic_regex_gives_up_as_no_match(pattern: str, hostile: str, matching: str) -> None:
    """A match past PCRE's match limit is no match (Erlang re's nomatch), never a hang."""
    assert mango.match({"s": {"$regex": pattern}}, {"s": hostile}) is False
    assert mango.match({"s": {"$regex": pattern}}, {"s": matching}) is True


def test_regex_is_pcre_itself() -> None:
    """PCRE syntax Python's re lacks works: possessive, atomic, \\h, \\z, (?<name>), \\K."""
    assert mango.match({"s": {"$regex": r"^a++b"}}, {"s": "aab"}) is True
    assert mango.match({"s": {"$regex": r"(?>a+)b"}}, {"s": "aab"}) is True
    assert mango.match({"s": {"$regex": r"x\hy"}}, {"s": "x y"}) is True
    assert mango.match({"s": {"$regex": r"a\z"}}, {"s": "a\n"}) is False
    assert mango.match({"s": {"$regex": r"(?<n>a)\k<n>"}}, {"s": "aa"}) is True
    assert mango.match({"s": {"$regex": r"\xc3\xa9"}}, {"s": "é"}) is True  # bytes, as Erlang
