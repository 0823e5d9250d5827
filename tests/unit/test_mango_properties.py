"""Hypothesis properties of Mango normalisation, matching, collation and sorting."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from couchmapper import mango
from couchmapper.exceptions import QueryError

# Characters that exercise every level of the collation: case, accents (precomposed and
# combining), expansions, punctuation and symbols of both orders, digits, other scripts.
TRICKY = (
    "aAbBeEzZ\u00e9\u00c9\u0301\u00df\u00e6"
    " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"
    "019\u0661\u65e5\u00a0\U0001f600"
)

texts = st.one_of(st.text(alphabet=TRICKY, max_size=6), st.text(max_size=4))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(alphabet="abc", max_size=2), children, max_size=3),
    ),
    max_leaves=8,
)

FIELDS = ["a", "b", "a.b", "a.0", "_id", "c"]
small_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "x", "X", "\u00e9"])
)


def conditions(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Field conditions: bare values and every operator with a valid argument."""
    return st.one_of(
        small_values,
        st.builds(
            lambda op, value: {op: value},
            st.sampled_from(["$lt", "$lte", "$eq", "$ne", "$gte", "$gt"]),
            small_values,
        ),
        st.builds(
            lambda op, values: {op: values},
            st.sampled_from(["$in", "$nin", "$all"]),
            st.lists(small_values, max_size=3),
        ),
        st.builds(lambda flag: {"$exists": flag}, st.booleans()),
        st.builds(
            lambda name: {"$type": name},
            st.sampled_from(["null", "boolean", "number", "string", "array", "object"]),
        ),
        st.builds(lambda n: {"$size": n}, st.integers(0, 3)),
        st.builds(
            lambda d, r: {"$mod": [d, r]},
            st.integers(1, 4) | st.integers(-4, -1),
            st.integers(-3, 3),
        ),
        st.builds(
            lambda p: {"$regex": p}, st.sampled_from(["^x", "(?i)x", "", "\u00e9$", "[0-9]"])
        ),
        st.builds(lambda p: {"$beginsWith": p}, st.sampled_from(["", "x", "X"])),
        st.builds(lambda c: {"$not": c}, inner),
        st.builds(
            lambda op, c: {op: c},
            st.sampled_from(["$elemMatch", "$allMatch", "$keyMapMatch"]),
            inner,
        ),
        st.builds(lambda c: {"$or": [c]}, inner),
        st.dictionaries(st.sampled_from(["b", "0"]), inner, min_size=1, max_size=2),
    )


field_conditions = st.recursive(small_values, conditions, max_leaves=6)


def selectors_from(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Combinations of selectors."""
    return st.one_of(
        st.builds(
            lambda op, parts: {op: parts},
            st.sampled_from(["$and", "$or", "$nor"]),
            st.lists(children, max_size=3),
        ),
        st.builds(lambda part: {"$not": part}, children),
        st.dictionaries(st.sampled_from(FIELDS), field_conditions, min_size=1, max_size=3),
    )


selectors = st.recursive(
    st.dictionaries(st.sampled_from(FIELDS), field_conditions, max_size=3),
    selectors_from,
    max_leaves=6,
)
documents = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(["b", "0"]), small_values | json_values, max_size=2),
        st.lists(small_values, max_size=3),
    ),
    max_size=3,
).map(lambda doc: {"_id": "doc", **doc})


@given(json_values, json_values)
def test_collate_is_antisymmetric_and_matches_the_key(a: Any, b: Any) -> None:
    """collate(a, b) == -collate(b, a), and it agrees with comparing collation keys."""
    order = mango.collate(a, b)
    assert order in (-1, 0, 1)
    assert mango.collate(b, a) == -order
    key_a, key_b = mango.collation_key(a), mango.collation_key(b)
    assert order == (key_a > key_b) - (key_a < key_b)
    assert mango.collate(a, a) == 0


@given(st.lists(json_values, min_size=3, max_size=6))
def test_collate_is_transitive_on_samples(values: list[Any]) -> None:
    """Sorted by collation_key, every earlier value collates at most every later one."""
    ordered = sorted(values, key=mango.collation_key)
    for earlier, later in itertools.combinations(ordered, 2):
        assert mango.collate(earlier, later) <= 0


@given(st.text(alphabet="abcxyzABCXYZ", min_size=1, max_size=5).filter(lambda t: t != t.upper()))
def test_lower_case_sorts_before_upper_case(text: str) -> None:
    """Lower case sorts first; an accent outranks case (a < A < á), as in ICU's root order."""
    assert mango.collate(text.lower(), text.upper()) == -1
    assert mango.collate(text, text + "\u0301") == -1
    assert mango.collate(text.upper(), text.lower() + "\u0301") == -1


@given(selectors)
def test_normalize_is_idempotent(selector: dict[str, Any]) -> None:
    """Normalising a normalised selector changes nothing (or both fail the same way)."""
    try:
        normalized = mango.normalize_selector(selector)
    except QueryError as error:
        assert error.status == 400
        return
    assert mango.normalize_selector(normalized) == normalized


@settings(max_examples=300)
@given(selectors, documents)
def test_match_equals_match_of_normalized(selector: dict[str, Any], doc: dict[str, Any]) -> None:
    """Matching a selector and matching its normalised form always agree."""
    try:
        normalized = mango.normalize_selector(selector)
    except QueryError:
        return
    try:
        expected = mango.match(normalized, doc)
    except QueryError as error:
        # Match-time failures (an empty field segment) must be the same for both forms.
        try:
            mango.match(selector, doc)
        except QueryError as again:
            assert again.error == error.error
            return
        raise AssertionError("only the normalised selector failed") from error
    assert mango.match(selector, doc) == expected


@given(st.lists(documents, max_size=6), st.sampled_from(["asc", "desc"]))
def test_sort_docs_sorts_the_docs_that_have_the_field(
    docs: list[dict[str, Any]], direction: str
) -> None:
    """sort_docs keeps exactly the docs with the field, in collation order."""
    ordered = mango.sort_docs(docs, [{"a": direction}])
    assert len(ordered) == sum("a" in doc for doc in docs)
    sign = 1 if direction == "asc" else -1
    for earlier, later in itertools.pairwise(ordered):
        assert sign * mango.collate(earlier["a"], later["a"]) <= 0
