"""The sans-IO parts of stored-conflict resolution: leaves, the winner, merge bases, merges."""

from __future__ import annotations

from typing import Any

import pytest

import couchmapper as cm
from couchmapper.orm.branches import (
    LEDGER_LIMIT,
    Leaf,
    edits,
    ledger,
    merge_plan,
    new_edits,
    parse_leaves,
    three_way,
    winner,
)
from couchmapper.orm.conflicts import needs_token
from couchmapper.tracking import PathKey


def leaf(rev: str, *history: str, deleted: bool = False, **body: Any) -> Leaf:
    """A leaf whose history is ``rev`` then ``history``."""
    return Leaf(rev, {"_id": "d", "_rev": rev, **body}, (rev, *history), deleted)


def rules(path: tuple[PathKey, ...]) -> Any:
    """n sums, tags unite, nothing else has a rule."""
    found = {"n": "sum", "tags": "union"}.get(str(path[0]))
    return None if found is None else (path[:1], found)


def test_parse_leaves_reads_histories_and_skips_missing() -> None:
    """open_revs rows become leaves (history from _revisions); missing rows are skipped."""
    answer = [
        {"ok": {"_id": "d", "_rev": "2-b", "v": 1, "_revisions": {"start": 2, "ids": ["b", "a"]}}},
        {"missing": "3-x"},
        {"ok": {"_id": "d", "_rev": "2-c", "_deleted": True}},
    ]
    first, second = parse_leaves(answer)
    assert (first.rev, first.history, first.body) == (
        "2-b",
        ("2-b", "1-a"),
        {"_id": "d", "_rev": "2-b", "v": 1},
    )
    assert (second.history, second.deleted) == (("2-c",), True)


def test_winner_rule_is_couchdbs() -> None:
    """Live before deleted, then the longer branch, then the larger revision id."""
    assert winner([leaf("1-f"), leaf("2-0")]).rev == "2-0"  # type: ignore[union-attr]
    assert winner([leaf("1-a"), leaf("2-z", deleted=True)]).rev == "1-a"  # type: ignore[union-attr]
    assert winner([leaf("2-a"), leaf("2-b")]).rev == "2-b"  # type: ignore[union-attr]
    assert winner([]) is None


def test_merge_plan_counts_every_edit_once() -> None:
    """Losers forking from each other above the winner's fork merge from their own fork."""
    target = leaf("3-w", "2-v", "1-a")
    left = leaf("3-l", "2-c", "1-a")
    right = leaf("3-r", "2-c", "1-a")
    plan = merge_plan(target, [left, right])
    assert [(loser.rev, base) for loser, base in plan] == [("3-r", "1-a"), ("3-l", "2-c")]


def test_merge_plan_uses_what_the_target_merged() -> None:
    """A loser extended from a leaf the target already merged merges from that leaf."""
    target = leaf("3-m", "2-w", "1-a")
    extended = leaf("3-x", "2-l", "1-a")
    ((_, base),) = merge_plan(target, [extended], merged=["2-l"])
    assert base == "2-l"


def test_three_way_sums_unites_and_merges_disjoint_fields() -> None:
    """Three branches from one base: deltas add, members unite, disjoint edits both kept."""
    base = {"n": 10, "tags": ["x"], "a": 1, "b": 1}
    winner_body = {"n": 15, "tags": ["x", "z"], "a": 1, "b": 2}
    loser = {"n": 13, "tags": ["x", "y"], "a": 3, "b": 1}
    outcome = three_way(winner_body, [(loser, base)], rules)
    assert outcome.document == {"n": 18, "tags": ["x", "z", "y"], "a": 3, "b": 2}


def test_three_way_reports_overlaps_and_two_way_fields() -> None:
    """Same field changed on both sides without a rule; no ancestor: only unions merge."""
    base = {"n": 1, "s": "base"}
    overlap = three_way({"n": 1, "s": "w"}, [({"n": 1, "s": "l"}, base)], rules)
    assert (overlap.document, overlap.overlaps) == (None, ("s",))
    two_way = three_way({"n": 2, "tags": ["a"]}, [({"n": 3, "tags": ["b"]}, None)], rules)
    assert (two_way.document, two_way.unreconciled) == (None, ("n",))
    unions = three_way({"n": 2, "tags": ["a"]}, [({"n": 2, "tags": ["b"]}, None)], rules)
    assert unions.document == {"n": 2, "tags": ["a", "b"]}


class Plain(cm.Document, type_name="unit-conflict-plain"):
    """Only a union rule."""

    tags: set[str] = cm.field(factory=set, merge="union")


class Part(cm.Embedded):
    """An embedded object with a sum rule."""

    n: int = cm.field(default=0, merge="sum")


class Nested(cm.Document, type_name="unit-conflict-nested"):
    """A sum rule inside an embedded field."""

    part: Part = cm.field(factory=Part)


@pytest.mark.parametrize(("cls", "expected"), [(Plain, False), (Nested, True)])
def test_needs_token(cls: type, expected: bool) -> None:
    """Only classes with a sum/callable rule (embedded ones included) write a token."""
    assert needs_token(cls()) is expected


def test_meta_resolve_is_checked() -> None:
    """An unknown Meta.resolve mode is refused when the class is defined."""
    with pytest.raises(ValueError, match=r"Meta\.resolve"):

        class Bad(cm.Document, type_name="unit-conflict-bad"):
            """A bad mode."""

            class Meta:
                resolve = "newest"


def test_edits_are_the_own_token_then_the_ledger() -> None:
    """A body's edits: its cm_write, then its cm_counted (a string, or a list); else none."""
    assert edits({"cm_write": "w", "cm_counted": "a b"}) == ["w", "a", "b"]
    assert edits({"cm_write": "w", "cm_counted": ["a", "b", 3]}) == ["w", "a", "b"]
    assert edits({"cm_counted": 7}) == []
    assert edits({}) == []


def test_a_ledger_keeps_each_token_once_newest_first_and_bounded() -> None:
    """Sources in order, duplicates and the write's own token dropped, the newest kept."""
    assert ledger(["b", "a"], ["w", "a", "c"], without="w") == ["b", "a", "c"]
    many = [f"t{i}" for i in range(LEDGER_LIMIT + 5)]
    assert ledger(["new"], many) == ["new", *many[: LEDGER_LIMIT - 1]]


def test_new_edits_leave_out_the_base_and_derived_resolution_tokens() -> None:
    """A leaf's edits beyond its base; a pure resolution's token (r...) is no edit."""
    base = {"cm_write": "p", "cm_counted": ["o"]}
    stray = {"cm_write": "mine", "cm_counted": ["p", "o"]}
    pure = {"cm_write": "r" + "0" * 31, "cm_counted": ["merged", "p", "o"]}
    assert new_edits(stray, base) == {"mine"}
    assert new_edits(pure, base) == {"merged"}
