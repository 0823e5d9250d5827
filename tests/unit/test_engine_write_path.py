"""The memory engine's write path: one checked copy per body, and the revision hash.

Both are checked against the plain definitions they replace: a JSON round trip of each
member (floats read as CouchDB stores them) with the size of its compact UTF-8 JSON, and
the md5 of ``term_to_binary([Deleted, OldPos, OldRev, Body, Atts])``.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from couchmapper._couch.checks import check_json
from couchmapper._couch.erlang import erlang_float, term_to_binary
from couchmapper._couch.json import json_copy, same_json
from couchmapper.exceptions import BackendError, EncodingError
from couchmapper.memory.engine.docs import (
    MAX_DOCUMENT_SIZE,
    copy_into,
    parse_doc,
    prepare_body,
    stored_body,
)
from couchmapper.memory.engine.revs import parse_rev, rev_hash

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([5e-324, -5e-324, -0.0, 2.2250738585072014e-308, 1e300])
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.dictionaries(st.text(max_size=5).filter(lambda k: not k.startswith("_")), json_values)


def reference_body(doc: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The member-by-member JSON round trip the write path used to make, and the body size."""
    members = {k: v for k, v in doc.items() if not k.startswith("_")}
    text = json.dumps(members, ensure_ascii=False, separators=(",", ":"))
    body = json.loads(json.dumps(members), parse_float=lambda t: erlang_float(float(t)))
    return body, len(text.encode("utf-8"))


def reference_hash(body: dict[str, Any], deleted: bool, parent: str | None) -> str:
    """CouchDB's rev hash by the general Erlang term encoder (no attachments)."""
    pos, tail = parse_rev(parent) if parent else (0, "")
    old: Any = bytes.fromhex(tail) if parent else 0
    return hashlib.md5(term_to_binary([deleted, pos, old, body, []])).hexdigest()


@settings(max_examples=200, deadline=None)
@given(body=bodies)
def test_stored_body_is_the_json_round_trip(body: dict[str, Any]) -> None:
    """The stored copy equals the member-by-member JSON round trip, types and size included."""
    doc = {"_id": "x", **body}
    copied, size = stored_body(doc)
    expected, expected_size = reference_body(doc)
    assert same_json(parse_doc(doc).body, expected)
    if copied is not None:  # None: the member-by-member copy runs (subnormals, say)
        assert same_json(copied, expected)
        assert size == expected_size


@settings(max_examples=200, deadline=None)
@given(body=bodies, deleted=st.booleans(), parent=st.sampled_from([None, "1-" + "ab" * 16]))
def test_rev_hash_equals_the_general_encoder(
    body: dict[str, Any], deleted: bool, parent: str | None
) -> None:
    """The specialised body encoder gives the same rev as term_to_binary of the whole term."""
    stored = reference_body(body)[0]
    assert rev_hash(stored, deleted, parent, {}) == reference_hash(stored, deleted, parent)


def test_known_couchdb_rev() -> None:
    """``{"v": 1}`` gets CouchDB 3.5's rev whatever the id (as the docstring records)."""
    assert rev_hash({"v": 1}, False, None, {}) == "7a7e4b29f3af401e69b6f86e4c26b727"


def test_subnormal_is_stored_as_zero() -> None:
    """A subnormal float is stored as 0.0, as CouchDB reads it."""
    assert same_json(parse_doc({"f": 5e-324, "g": [-5e-324]}).body, {"f": 0.0, "g": [0.0]})


def test_plain_documents_take_the_one_copy() -> None:
    """An ordinary body is copied in one round trip, with its compact JSON size."""
    doc = {"_id": "x", "_rev": "1-" + "a" * 32, "n": 1.5, "s": "\u00e9", "l": [True, None]}
    body, size = stored_body(doc)
    assert body == {"n": 1.5, "s": "\u00e9", "l": [True, None]}
    assert size == len('{"n":1.5,"s":"\u00e9","l":[true,null]}'.encode())


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (math.nan, BackendError),
        (math.inf, BackendError),
        ("\ud800", EncodingError),
        ({1: "x"}, TypeError),
        ({"k": {1, 2}}, TypeError),
    ],
)
def test_bad_values_get_check_jsons_error(value: Any, error: type[Exception]) -> None:
    """A value that is not JSON gets exactly the error check_json gives it."""
    doc = {"_id": "x", "a": [1, {"b": value}]}
    with pytest.raises(error) as expected:
        check_json(doc)
    with pytest.raises(error) as got:
        stored_body(doc)
    assert str(got.value) == str(expected.value)
    with pytest.raises(error) as walked:
        prepare_body(doc)
    assert str(walked.value) == str(expected.value)


def test_unusual_values_take_the_member_by_member_copy() -> None:
    """Tuples, subclasses and deep nesting are copied the careful way, to the same result."""

    class Text(str):
        """A str subclass."""

    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    doc = {"_id": "x", "t": (1, 2.5), Text("s"): "y", "deep": deep}
    assert stored_body(doc) == (None, 0)
    assert prepare_body(doc) == (None, 0, None, None)
    parsed = parse_doc(doc)
    expected, _ = reference_body({"t": [1, 2.5], "s": "y", "deep": deep})
    assert json.dumps(parsed.body) == json.dumps(expected)


def test_special_members_are_checked_but_not_stored() -> None:
    """``_id``/``_rev`` stay out of the body; a NaN inside a special member is still refused."""
    parsed = parse_doc({"_id": "x", "_rev": "1-" + "a" * 32, "n": 1})
    assert parsed.body == {"n": 1}
    assert parsed.rev == "1-" + "a" * 32
    with pytest.raises(BackendError):
        stored_body({"_id": "x", "_revisions": {"start": 1, "ids": [math.nan]}})


@settings(max_examples=200, deadline=None)
@given(body=bodies)
def test_read_copy_equals_json_copy_and_shares_no_container(body: dict[str, Any]) -> None:
    """Reads copy stored bodies like json_copy; no dict or list of the copy is stored."""
    stored = reference_body(body)[0]
    copied = copy_into({}, stored)
    assert same_json(copied, json_copy(stored))
    stack: list[tuple[Any, Any]] = [(copied, stored)]
    while stack:
        mine, theirs = stack.pop()
        if isinstance(mine, dict | list):
            assert mine is not theirs
            if isinstance(mine, dict):
                stack.extend(zip(mine.values(), theirs.values(), strict=True))
            else:
                stack.extend(zip(mine, theirs, strict=True))


def test_read_copy_of_a_deep_body() -> None:
    """A body nested past the fast copy's depth is copied whole."""
    deep: Any = {"leaf": [1]}
    for _ in range(500):
        deep = {"d": deep}
    copied = copy_into({}, {"top": deep})
    assert json.dumps(copied) == json.dumps({"top": deep})
    assert copied["top"] is not deep


specials = st.fixed_dictionaries(
    {},
    optional={
        "_id": st.text(min_size=1).map(lambda t: "k" + t),
        "_rev": st.just("3-" + "cd" * 16),
        "_deleted": st.booleans(),
    },
)


@settings(max_examples=300, deadline=None)
@given(body=bodies, extra=specials)
def test_one_walk_gives_the_round_trip_its_term_and_a_size_bound(
    body: dict[str, Any], extra: dict[str, Any]
) -> None:
    """The walked copy is the JSON round trip; its term is term_to_binary; the size is a bound."""
    doc = {**extra, **body}
    copied, size, term, found = prepare_body(doc)
    expected, expected_size = reference_body(doc)
    assert copied is not None
    assert term is not None  # exact JSON types, shallow: every such body is walked
    assert same_json(copied, expected)
    assert term == term_to_binary(expected)[1:]
    assert expected_size <= size <= MAX_DOCUMENT_SIZE
    assert found == list(extra.items())
    assert same_json(parse_doc(doc).body, expected)


@settings(max_examples=100, deadline=None)
@given(body=bodies, deleted=st.booleans(), parent=st.sampled_from([None, "1-" + "ab" * 16]))
def test_rev_hash_from_the_walked_term(
    body: dict[str, Any], deleted: bool, parent: str | None
) -> None:
    """The rev hashed from the walk's term is the one hashed from the stored body."""
    parsed = parse_doc({"_id": "x", **body})
    stored = reference_body(body)[0]
    mine = rev_hash(parsed.body, deleted, parent, {}, term=parsed.term)
    assert mine == reference_hash(stored, deleted, parent)


@pytest.mark.parametrize(
    "value",
    [
        "\x00" * 50,
        '"\\' * 40,
        list(range(256)) * 3,
        [0] * 100,
        [-(2**80), 2**31, -(2**31) - 1, 2**64] * 10,
        [5e-310, -1.2345678901234567e-308, 1e300] * 10,
        [[], {}, [[]], {"": {}}] * 10,
        [True, False, None] * 20,
        {"\x01" * 9: "\x02" * 9},
    ],
)
def test_size_bound_holds_for_the_densest_json(value: Any) -> None:
    """Escaped strings, digit-heavy numbers and empty containers stay within the bound."""
    doc = {"_id": "x", "\x1f": value, "k": [value, {"n": value}]}
    _, size, term, _ = prepare_body(doc)
    assert term is not None
    assert reference_body(doc)[1] <= size


def test_a_body_near_the_limit_is_measured_exactly() -> None:
    """A body whose bound reaches the limit takes the exact size (and 413 past it)."""
    doc = {"_id": "x", "s": "a" * 2_000_000}
    copied, size, term, _ = prepare_body(doc)
    assert (copied, size, term) == ({"s": "a" * 2_000_000}, 2_000_008, None)
    with pytest.raises(BackendError) as too_large:
        parse_doc({"_id": "big", "s": "a" * MAX_DOCUMENT_SIZE})
    assert too_large.value.status == 413
