"""The sans-IO flush core: result pairing, "did it land?", changed paths and rebase merges."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from couchmapper._types import MergeRule
from couchmapper.orm.merge import (
    WriteResult,
    changed_paths,
    landed,
    rebase,
    results_in_order,
)
from couchmapper.tracking import MISSING, Change, PathKey

Rule = tuple[tuple[PathKey, ...], MergeRule] | None


def no_rules(path: tuple[PathKey, ...]) -> Rule:
    """No field has a merge rule."""
    return None


def rules(**by_field: MergeRule) -> Any:
    """A rule finder from top-level field names to rules."""

    def find(path: tuple[PathKey, ...]) -> Rule:
        rule = by_field.get(str(path[0]))
        return ((path[0],), rule) if rule is not None else None

    return find


def test_results_in_order_pairs_answers() -> None:
    """Each sent document gets its answer; a missing answer is an error, not a success."""
    sent = [{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]
    answer: list[dict[str, Any]] = [
        {"ok": True, "id": "a", "rev": "1-x"},
        {"id": "b", "error": "conflict", "reason": "r"},
    ]
    results = results_in_order(sent, answer)
    assert results == [
        WriteResult("a", "1-x"),
        WriteResult("b", None, "conflict", "r"),
        WriteResult("c", None, "unknown", "no answer for this document"),
    ]
    assert [r.ok for r in results] == [True, False, False]


def test_landed() -> None:
    """A write landed when the server holds exactly what was sent (revs aside)."""
    sent = {"_id": "a", "_rev": "1-x", "n": 1, "l": [1, {"k": 2.0}]}
    assert landed(sent, {"_id": "a", "_rev": "2-y", "n": 1.0, "l": [1, {"k": 2}]})
    assert not landed(sent, {"_id": "a", "_rev": "2-y", "n": 2, "l": [1, {"k": 2}]})
    assert not landed(sent, {"_id": "a", "_rev": "2-y", "n": True, "l": [1, {"k": 2}]})
    assert not landed(sent, None)
    assert not landed(sent, {"_id": "a", "_deleted": True})
    deletion = {"_id": "a", "_rev": "1-x", "_deleted": True}
    assert landed(deletion, None) and not landed(deletion, {"_id": "a", "_rev": "2-z"})


def test_changed_paths_are_smallest() -> None:
    """Dicts are compared key by key, lists as a whole; server keys are ignored."""
    base = {"_rev": "1", "a": {"b": 1, "c": 2}, "l": [1, 2], "same": "x", "gone": 1}
    theirs = {"_rev": "2", "a": {"b": 1, "c": 3}, "l": [1, 2, 3], "same": "x", "new": 0}
    assert changed_paths(base, theirs) == {("a", "c"), ("l",), ("gone",), ("new",)}
    assert changed_paths(base, base) == set()


def test_rebase_applies_disjoint_changes() -> None:
    """Changes at paths the server did not touch are re-applied on its version."""
    base = {"_id": "d", "a": 1, "b": {"x": 1}}
    mine = {"_id": "d", "a": 2, "b": {"x": 1}}
    theirs = {"_id": "d", "_rev": "2-t", "a": 1, "b": {"x": 1, "y": 9}}
    result = rebase(base, mine, [Change("replace", ("a",), 2, 1)], theirs, no_rules)
    assert result.document == {"_id": "d", "_rev": "2-t", "a": 2, "b": {"x": 1, "y": 9}}
    assert result.overlaps == ()


def test_rebase_reports_overlaps() -> None:
    """A change under a path the server also changed, with no rule, is an overlap."""
    base = {"a": {"b": 1}}
    mine = {"a": {"b": 2}}
    theirs = {"a": 5}
    result = rebase(base, mine, [Change("replace", ("a", "b"), 2, 1)], theirs, no_rules)
    assert result.document is None and result.overlaps == ("a.b",)


def test_rebase_merge_rules() -> None:
    """sum adds this side's delta, union merges additions/removals, a callable decides."""
    base = {"n": 10, "s": ["a", "b"], "best": 1}
    mine = {"n": 12, "s": ["b", "m"], "best": 4}
    theirs = {"n": 20, "s": ["a", "b", "t"], "best": 3}
    changes = [
        Change("replace", ("n",), 12, 10),
        Change("remove", ("s", 0), MISSING, "a"),
        Change("add", ("s", 1), "m"),
        Change("replace", ("best",), 4, 1),
    ]
    finder = rules(n="sum", s="union", best=lambda b, m, t: max(m, t))
    result = rebase(base, mine, changes, theirs, finder)
    assert result.document == {"n": 22, "s": ["b", "t", "m"], "best": 4}


def test_rebase_sum_needs_numbers() -> None:
    """sum over a non-number is an overlap, not a crash."""
    result = rebase(
        {"n": 1}, {"n": 2}, [Change("replace", ("n",), 2, 1)], {"n": "x"}, rules(n="sum")
    )
    assert result.overlaps == ("n",)


def test_rebase_list_change_against_remote_list_change_overlaps() -> None:
    """List edits are positional: any concurrent edit of the same list is an overlap."""
    base = {"l": [1, 2, 3]}
    mine = {"l": [1, 2, 9]}
    theirs = {"l": [2, 3]}
    result = rebase(base, mine, [Change("replace", ("l", 2), 9, 3)], theirs, no_rules)
    assert result.overlaps == ("l[2]",)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
docs = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), json_scalars, max_size=5)


@given(base=docs, mine_edits=docs, their_edits=docs)
def test_rebase_property_disjoint_edits_both_survive(
    base: dict[str, Any], mine_edits: dict[str, Any], their_edits: dict[str, Any]
) -> None:
    """Top-level edits: disjoint ones both survive, clashing ones (other values) are reported."""
    mine = {**base, **mine_edits}
    theirs = {**base, **their_edits}
    changes = [
        Change("replace" if k in base else "add", (k,), v, base.get(k, MISSING))
        for k, v in mine_edits.items()
        if k not in base or changed_paths(base[k], v)
    ]
    result = rebase(base, mine, changes, theirs, no_rules)
    remote = changed_paths(base, theirs)
    mine_paths = {c.path for c in changes}
    # Both sides setting the same value is no clash.
    clashing = {p for p in mine_paths & remote if changed_paths(mine[str(p[0])], theirs[str(p[0])])}
    if clashing:
        assert result.document is None
        assert set(result.overlaps) == {str(p[0]) for p in clashing}
    else:
        expected = dict(theirs)
        expected.update({str(c.path[0]): c.value for c in changes})
        assert result.document == expected
        assert landed(expected, result.document)
