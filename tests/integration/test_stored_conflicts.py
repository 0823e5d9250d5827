"""Stored conflicts: seen on every load path, resolved three-way in the flush's one request.

Conflicts are injected with ``_bulk_docs`` ``new_edits=false`` (a base revision and two
branches), on the memory engine and on the test server (pouchdb-server, or CouchDB 3.5 with
COUCHDB_URL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from _proxy import RecordingProxy
from conflict_models import (
    BASE_REV,
    LEFT_REV,
    RIGHT_REV,
    CustomTally,
    MergedTally,
    Note,
    Tally,
    WinnerTally,
    branches,
    calls,
    leaves,
    stored,
)
from session_models import bulk_posts, record_bulk_docs

import couchmapper as cm
from couchmapper import signals
from couchmapper.backends.base import Backend
from couchmapper.backends.couchdb import CouchDBBackend
from couchmapper.memory import MemoryBackend


def is_pouchdb(request: pytest.FixtureRequest, backend: Backend) -> bool:
    """Whether ``backend`` is pouchdb-server (whose documented deviations apply)."""
    if isinstance(backend, MemoryBackend):
        return False
    return bool(request.getfixturevalue("server_kind") == "pouchdb")


def merged_body(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields the stored-conflict fixture's merge decides."""
    return {k: doc[k] for k in ("count", "title", "note")} | {"tags": sorted(doc["tags"])}


EXPECTED = {"count": 18, "title": "T-left", "note": "N-right", "tags": ["x", "y", "z"]}


# ------------------------------------------------------------------------------------------
# Seeing conflicts


def test_get_and_get_many_show_conflicts_in_one_request(backend: Backend) -> None:
    """get and get_many load the losing revisions with the document, one request each."""
    branches(backend, "conflict-tally")
    with cm.Session(backend) as s:
        doc = s.get(Tally, "doc")
        assert doc is not None and doc.rev == RIGHT_REV
        assert cm.conflicts(doc) == [LEFT_REV]
        assert s.stats().requests == 1
    with cm.Session(backend) as s:
        (many,) = s.get_many(Tally, ["doc"])
        assert cm.conflicts(many) == [LEFT_REV]
        assert s.stats().requests == 1


def test_queries_and_views_show_conflicts(request: pytest.FixtureRequest, backend: Backend) -> None:
    """find, find_iter, all and a view with include_docs carry _conflicts (Mango too)."""
    branches(backend, "conflict-tally")
    # pouchdb-server 4.2.0 ignores Mango's "conflicts": true (transcript 06-mango/mango-conflicts).
    mango = [] if is_pouchdb(request, backend) else [LEFT_REV]
    loaders: dict[str, tuple[Callable[[cm.Session], Any], list[str]]] = {
        "find": (lambda s: s.find(Tally)[0], mango),
        "find_iter": (lambda s: next(iter(s.find_iter(Tally))), mango),
        "all": (lambda s: next(iter(s.all(Tally))), mango),
        "view": (lambda s: s.view("_all_docs", include_docs=True)[0].doc, [LEFT_REV]),
    }
    for name, (load, expected) in loaders.items():
        with cm.Session(backend) as s:
            assert cm.conflicts(load(s)) == expected, name
            assert s.stats().requests == 1, name


def test_conflict_found_payload_and_no_conflicts(backend: Backend) -> None:
    """conflict_found: sender the class; session, document and revisions; none when clean."""
    branches(backend, "conflict-tally")
    backend.bulk_docs([{"_id": "clean", "type": "conflict-tally"}])
    seen: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append((sender, kwargs))

    signals.conflict_found.connect(receiver)
    try:
        with cm.Session(backend) as s:
            doc, clean = s.get_many(Tally, ["doc", "clean"])
    finally:
        signals.conflict_found.disconnect(receiver)
    assert seen == [(Tally, {"session": s, "document": doc, "revisions": [LEFT_REV]})]
    assert cm.conflicts(clean) == []


# ------------------------------------------------------------------------------------------
# Resolving


def test_merge_mode_resolves_exactly_in_one_request(backend: Backend) -> None:
    """Meta.resolve="merge": sum, union and disjoint edits merge; one _bulk_docs; none left."""
    branches(backend, "conflict-merged")
    sent = record_bulk_docs(backend)
    with cm.Session(backend) as s:
        doc = s.get(MergedTally, "doc")
        assert doc is not None
        s.flush()
        assert merged_body(cm.dump(doc)) == EXPECTED  # the object took the merged values
        assert cm.conflicts(doc) == []
    (request,) = sent
    assert [(d["_rev"], d.get("_deleted", False)) for d in request] == [
        (RIGHT_REV, False),
        (LEFT_REV, True),
    ]
    assert request[0]["cm_merged"] == [LEFT_REV]
    after = stored(backend)
    assert "_conflicts" not in after
    assert merged_body(after) == EXPECTED
    assert len(leaves(backend)) == 1


def test_resolution_goes_with_the_rest_of_the_flush(backend: Backend) -> None:
    """Edits of the conflicted document and of others go in the same single request."""
    branches(backend, "conflict-merged")
    sent = record_bulk_docs(backend)
    with cm.Session(backend) as s:
        doc = s.get(MergedTally, "doc")
        assert doc is not None
        doc.count += 1
        s.add(Note(id="other", text="hello"))
    (request,) = sent
    assert sorted((d["_id"], d.get("_deleted", False)) for d in request) == [
        ("doc", False),
        ("doc", True),
        ("other", False),
    ]
    assert merged_body(stored(backend)) == {**EXPECTED, "count": 19}


def test_without_meta_resolve_nothing_is_automatic(backend: Backend) -> None:
    """A class without Meta.resolve keeps its conflicts until session.resolve is called."""
    branches(backend, "conflict-tally")
    sent = record_bulk_docs(backend)
    with cm.Session(backend) as s:
        doc = s.get(Tally, "doc")
        assert doc is not None
        s.flush()
        assert sent == []
        s.resolve(doc)
        s.flush()
    assert len(sent) == 1
    assert merged_body(stored(backend)) == EXPECTED
    assert "_conflicts" not in stored(backend)


def test_resolve_from_a_conflict_found_receiver(backend: Backend) -> None:
    """A receiver of conflict_found may resolve the document; the next flush writes it."""
    branches(backend, "conflict-tally")

    def resolve(sender: Any, *, session: cm.Session, document: Any, **kwargs: Any) -> None:
        session.resolve(document)

    signals.conflict_found.connect(resolve, sender=Tally)
    try:
        with cm.Session(backend) as s:
            s.get(Tally, "doc")
    finally:
        signals.conflict_found.disconnect(resolve, sender=Tally)
    assert merged_body(stored(backend)) == EXPECTED


def test_winner_mode_keeps_the_winner(backend: Backend) -> None:
    """Meta.resolve="winner": the winner's values stay, every loser is deleted."""
    branches(backend, "conflict-winner")
    with cm.Session(backend) as s:
        s.get(WinnerTally, "doc")
    after = stored(backend)
    assert "_conflicts" not in after
    assert merged_body(after) == {"count": 15, "title": "t", "note": "N-right", "tags": ["x", "z"]}


def test_callable_mode_gets_base_winner_losers(backend: Backend) -> None:
    """A callable Meta.resolve gets (base, winner, losers) as JSON; its result is written."""
    branches(backend, "conflict-custom")
    calls.clear()
    with cm.Session(backend) as s:
        s.get(CustomTally, "doc")
    ((base, winner, losers),) = calls
    assert (base["count"], winner["count"], [d["count"] for d in losers]) == (10, 15, [13])
    assert "_rev" not in winner and "_conflicts" not in winner
    after = stored(backend)
    assert after["count"] == 15 and "_conflicts" not in after


def test_manual_resolve_with_a_merged_document(backend: Backend) -> None:
    """session.resolve(doc, merged) writes the given values as the one winner."""
    branches(backend, "conflict-tally")
    with cm.Session(backend) as s:
        doc = s.get(Tally, "doc")
        assert doc is not None
        s.resolve(doc, Tally(id="doc", count=100, title="chosen"))
        s.flush()
        assert doc.count == 100 and doc.title == "chosen"
    after = stored(backend)
    assert (after["count"], after["title"], "_conflicts" in after) == (100, "chosen", False)


def test_overlap_without_a_rule_is_reported_and_left(backend: Backend) -> None:
    """Both branches change the title (no rule): reported in unresolved, conflict kept."""
    branches(backend, "conflict-merged", title="T-right")
    with cm.Session(backend) as s:
        doc = s.get(MergedTally, "doc")
        assert doc is not None
        doc.note = "mine"
        s.flush()
        error = s.unresolved["doc"]
        assert error.paths == ("title",)
        assert "unresolved" in str(error)
    after = stored(backend)
    assert after["_conflicts"] == [LEFT_REV]  # nothing lost
    assert after["note"] == "mine"  # the session's own edit was written


def test_compacted_ancestor_two_way_names_fields(backend: Backend) -> None:
    """Without the ancestor's body, unions merge and the other differences are named."""
    branches(backend, "conflict-merged", base_stored=False)
    with cm.Session(backend) as s:
        s.get(MergedTally, "doc")
        s.flush()
        assert set(s.unresolved["doc"].paths) == {"count", "title", "note"}
    assert stored(backend)["_conflicts"] == [LEFT_REV]


def test_compacted_ancestor_with_only_unions_resolves(backend: Backend) -> None:
    """Two-way: branches differing only in union fields merge without their ancestor."""
    branches(backend, "conflict-merged", base_stored=False, count=13, title="T-left", note="n")
    with cm.Session(backend) as s:
        s.get(MergedTally, "doc")
        s.flush()
        assert s.unresolved == {}
    after = stored(backend)
    assert "_conflicts" not in after and sorted(after["tags"]) == ["x", "y", "z"]


# ------------------------------------------------------------------------------------------
# Concurrency and partial failure


def test_two_sessions_resolving_count_once(backend: Backend) -> None:
    """Two sessions resolve the same conflict: the second finds it done; totals counted once."""
    branches(backend, "conflict-merged")
    sessions = [cm.Session(backend), cm.Session(backend), cm.Session(backend, conflict="rebase")]
    docs = [s.get(MergedTally, "doc") for s in sessions]
    assert all(doc is not None for doc in docs)
    docs[2].count += 1  # type: ignore[union-attr]  # the third also has an edit of its own
    sent = record_bulk_docs(backend)
    for s in sessions:
        s.flush()
    assert merged_body(stored(backend)) == {**EXPECTED, "count": 19}
    assert len(leaves(backend)) == 1 and "_conflicts" not in stored(backend)
    assert [d.count for d in docs] == [18, 18, 19]  # type: ignore[union-attr]
    # The second found the conflict resolved and wrote nothing; the third's +1 met the
    # first's write and was rebased on it.
    assert [len(docs) for docs in sent] == [2, 1, 1]


def test_winner_written_elsewhere_meanwhile(backend: Backend) -> None:
    """The merged winner refused (winner changed), the loser deleted: its delta is not lost."""
    branches(backend, "conflict-merged")
    s = cm.Session(backend)
    doc = s.get(MergedTally, "doc")
    assert doc is not None
    current = backend.get("doc")
    backend.bulk_docs([{**current, "count": current["count"] + 100}])  # a plain write elsewhere
    s.flush()
    assert merged_body(stored(backend)) == {**EXPECTED, "count": 118}
    assert len(leaves(backend)) == 1
    assert doc.count == 118


def test_loser_extended_meanwhile(backend: Backend) -> None:
    """The loser's deletion refused (extended elsewhere): merged again from that leaf."""
    branches(backend, "conflict-merged")
    s = cm.Session(backend)
    s.get(MergedTally, "doc")
    loser = backend.get("doc", rev=LEFT_REV)
    backend.bulk_docs([{**loser, "count": loser["count"] + 2}])
    s.flush()
    assert merged_body(stored(backend)) == {**EXPECTED, "count": 20}
    assert len(leaves(backend)) == 1


# ------------------------------------------------------------------------------------------
# The write token


def test_write_token_only_for_non_idempotent_rules(backend: Backend) -> None:
    """Classes with sum/callable rules write a fresh cm_write each time; others none."""
    sent = record_bulk_docs(backend)
    with cm.Session(backend) as s:
        s.add(Tally(id="t"))
        s.add(Note(id="n"))
    with cm.Session(backend) as s:
        tally = s.get(Tally, "t")
        assert tally is not None
        tally.count += 1
    first, second = sent
    tokens = [d.get("cm_write") for d in first] + [second[0]["cm_write"]]
    assert tokens[1] is None
    assert isinstance(tokens[0], str) and isinstance(tokens[2], str) and tokens[0] != tokens[2]


def test_same_edit_on_same_revision_is_two_writes(backend: Backend) -> None:
    """Two sessions adding 1 on one revision: with the token both count (rebase), not one."""
    backend.bulk_docs([{"_id": "t", "type": "conflict-tally", "count": 0}])
    first, second = cm.Session(backend, conflict="rebase"), cm.Session(backend, conflict="rebase")
    one, two = first.get(Tally, "t"), second.get(Tally, "t")
    assert one is not None and two is not None
    one.count += 1
    two.count += 1
    first.flush()
    second.flush()
    assert backend.get("t")["count"] == 2


@pytest.mark.parametrize("cls", [Tally, MergedTally])
def test_resolve_refuses_a_new_document(backend: Backend, cls: type[Tally]) -> None:
    """session.resolve of a never-written document is a SessionStateError."""
    with cm.Session(backend) as s:
        doc = s.add(cls(id="fresh"))
        with pytest.raises(cm.SessionStateError, match="never written"):
            s.resolve(doc)
        s.rollback()


def _body_kept(backend: Backend) -> bool:
    """Whether the fixture's base revision still has its body."""
    try:
        backend.get("doc", rev=BASE_REV)
    except cm.DocumentNotFound:
        return False
    return True


@pytest.mark.couchdb
def test_compacted_on_couchdb_falls_back_to_two_way(
    server_kind: str, couch_backend: CouchDBBackend, couchdb_database: Any
) -> None:
    """After CouchDB compacts the ancestor away, the two-way fallback names what it can't merge."""
    if server_kind != "couchdb":
        pytest.fail("needs Apache CouchDB: run make test-couchdb with COUCHDB_URL", pytrace=False)
    branches(couch_backend, "conflict-merged")
    assert couch_backend.get("doc", rev=BASE_REV)["count"] == 10
    couchdb_database.compact()
    # The compaction starts a moment after its 202 (compact_running may still be false at
    # the first poll): wait, at most a minute, until it has run and the ancestor is gone.
    for _ in range(600):
        if not couchdb_database.info()["compact_running"] and not _body_kept(couch_backend):
            break
        time.sleep(0.1)
    with pytest.raises(cm.DocumentNotFound):
        couch_backend.get("doc", rev=BASE_REV)  # the ancestor's body is gone
    with cm.Session(couch_backend) as s:
        s.get(MergedTally, "doc")
        s.flush()
        assert set(s.unresolved["doc"].paths) == {"count", "title", "note"}
    assert stored(couch_backend)["_conflicts"] == [LEFT_REV]


@pytest.mark.server
def test_a_resent_write_keeps_its_token(proxied_backend: Backend, proxy: RecordingProxy) -> None:
    """A write whose answer was lost is sent again with the same token (the same revision)."""
    proxied_backend.bulk_docs([{"_id": "t", "type": "conflict-tally", "count": 0}])
    s = cm.Session(proxied_backend)
    tally = s.get(Tally, "t")
    assert tally is not None
    tally.count += 1
    proxy.cut_after(path_contains="_bulk_docs", method="POST")
    with pytest.raises(cm.BackendUnavailable):
        s.flush()
    (first,) = bulk_posts(proxy)[-1]
    proxy.clear()
    s.flush()
    resent = {d["cm_write"] for docs in bulk_posts(proxy) for d in docs}
    stored_doc = proxied_backend.get("t", conflicts=True)
    assert stored_doc["count"] == 1 and "_conflicts" not in stored_doc
    assert stored_doc["_rev"].startswith("2-")
    assert stored_doc["cm_write"] == first["cm_write"]
    assert resent <= {first["cm_write"]}  # if sent again at all, with the same token
    s.close()


def rev(pos: int, char: str) -> str:
    """The revision ``pos-<char * 32>``."""
    return f"{pos}-{char * 32}"


def tree_doc(pos: int, char: str, parents: str, count: int, **extra: Any) -> dict[str, Any]:
    """A revision ``pos-<char * 32>`` of "doc" whose ancestors are ``parents`` (newest first)."""
    ids = [c * 32 for c in char + parents]
    body = {"_id": "doc", "type": "conflict-merged", "count": count, "tags": [], **extra}
    return {**body, "_rev": rev(pos, char), "_revisions": {"start": pos, "ids": ids}}


def tombstone(pos: int, char: str, parents: str) -> dict[str, Any]:
    """A deletion ``pos-<char * 32>`` on the revision ``parents[0]``."""
    ids = [c * 32 for c in char + parents]
    return {
        "_id": "doc",
        "_deleted": True,
        "_rev": rev(pos, char),
        "_revisions": {"start": pos, "ids": ids},
    }


def test_two_resolutions_with_edits_count_once(backend: Backend) -> None:
    """Two merged winners of one conflict (cluster race): its loser is counted once."""

    tree = [
        tree_doc(1, "a", "", 10),
        tree_doc(2, "e", "a", 15),  # the winner's branch: +5
        tree_doc(2, "b", "a", 13),  # the first conflict's loser: +3
        tombstone(3, "f", "ba"),
        # Two sessions merged +3 into the winner, each with an edit of its own (+1, +2).
        tree_doc(3, "c", "ea", 19, cm_merged=[rev(2, "b")], cm_write="one"),
        tree_doc(3, "d", "ea", 20, cm_merged=[rev(2, "b")], cm_write="two"),
    ]
    backend.bulk_docs(tree, new_edits=False)
    with cm.Session(backend) as s:
        merged = s.get(MergedTally, "doc")
        assert merged is not None and cm.conflicts(merged) == [rev(3, "c")]
    after = stored(backend)
    assert after["count"] == 10 + 5 + 3 + 1 + 2 and "_conflicts" not in after


@pytest.mark.parametrize(("retry", "resolution"), [("c", "e"), ("e", "c")], ids=["loses", "wins"])
def test_a_retry_beside_a_resolution_that_merged_its_attempt_counts_once(
    backend: Backend, retry: str, resolution: str
) -> None:
    """A session's retry and another's resolution of its refused attempt, as two leaves.

    The attempt (``cm_write`` "mine") was refused but stored on one copy; another session
    merged it with an edit of its own (+5) while the first wrote it again (+1) beside that.
    Whichever leaf wins, "mine" is counted once: the retry adds nothing to the resolution;
    the resolution adds only its own +5 to the retry (its merged attempt is found through
    ``cm_merged``).
    """

    tree = [
        tree_doc(1, "a", "", 10),
        tree_doc(2, "b", "a", 11, cm_write="another"),  # another writer's +1
        tree_doc(2, "d", "a", 11, cm_write="mine"),  # the refused attempt, stored on one copy
        tombstone(3, "f", "da"),
        tree_doc(3, retry, "ba", 12, cm_write="mine", cm_counted=["another"]),
        tree_doc(
            3,
            resolution,
            "ba",
            17,
            cm_write="theirs",
            cm_merged=[rev(2, "d")],
            cm_counted=["mine", "another"],
        ),
    ]
    backend.bulk_docs(tree, new_edits=False)
    with cm.Session(backend) as s:
        merged = s.get(MergedTally, "doc")
        assert merged is not None and len(cm.conflicts(merged)) == 1
    after = stored(backend)
    assert after["count"] == 10 + 1 + 1 + 5 and "_conflicts" not in after
    assert {"mine", "another", "theirs"} <= set(after["cm_counted"].split())


def test_a_loser_owed_after_a_refused_winner_is_not_merged_twice(
    request: pytest.FixtureRequest, backend: Backend
) -> None:
    """Our deletion of a loser landed, our merged winner did not: another session merged it.

    The loser is owed to the next attempt, but meanwhile another session merged it into the
    winner (and a third wrote on top, dropping ``cm_merged``). The winner's ``cm_counted``
    still lists the loser's token: the retry adds only this session's +1.
    """

    tree = [
        tree_doc(1, "a", "", 10),
        tree_doc(2, "e", "a", 15, cm_write="winner"),  # +5
        tree_doc(2, "b", "a", 13, cm_write="loser"),  # +3
    ]
    backend.bulk_docs(tree, new_edits=False)
    s = cm.Session(backend, conflict="rebase")
    tally = s.get(MergedTally, "doc")
    assert tally is not None and cm.conflicts(tally) == [rev(2, "b")]
    tally.count += 1

    def others_first(bulk: Bulk, _doc: dict[str, Any]) -> None:
        """Another session's resolution (its deletion of the loser lost), then a +2."""
        body = {"_id": "doc", "type": "conflict-merged", "tags": [], "cm_merged": [rev(2, "b")]}
        merged = {**body, "_rev": rev(2, "e"), "count": 18, "cm_write": "other"}
        (answer,) = bulk([{**merged, "cm_counted": ["loser", "winner"]}])
        body = {"_id": "doc", "type": "conflict-merged", "tags": [], "_rev": answer["rev"]}
        ledger = ["other", "loser", "winner"]  # carried forward, as every write does
        (answer,) = bulk([{**body, "count": 20, "cm_write": "plus2", "cm_counted": ledger}])
        assert answer.get("ok"), answer

    plain_bulk = backend.bulk_docs
    done: list[bool] = []

    def first_the_others(docs: Sequence[dict[str, Any]], **options: Any) -> Any:
        if not done:
            done.append(True)
            others_first(plain_bulk, dict(docs[0]))
        return plain_bulk(docs, **options)

    backend.bulk_docs = first_the_others  # type: ignore[method-assign]
    sent = record_bulk_docs(backend)
    s.flush()
    first, retry = sent
    assert [(d["_rev"], d.get("_deleted", False)) for d in first] == [
        (rev(2, "e"), False),
        (rev(2, "b"), True),  # this one landed; the merged winner met the others' writes
    ]
    assert [d["count"] for d in retry] == [21]  # 10 + 5 + 3 + 2 + 1: the loser once
    after = stored(backend)
    assert after["count"] == 21 and tally.count == 21
    if is_pouchdb(request, backend):
        # pouchdb-server keeps the refused winner as a leaf without a body (conformance case
        # bulk_refused_beside_another_leaf): listed in _conflicts, answered as missing.
        listed = after.get("_conflicts", [])  # pouchdb lists a phantom, or none
        phantoms: Any = backend.get("doc", open_revs=listed) if listed else []
        assert [row.get("missing") for row in phantoms] == listed
    else:
        assert "_conflicts" not in after


def test_a_branch_whose_first_write_was_merged_adds_only_the_rest(backend: Backend) -> None:
    """A loser extended after another session merged its first write: the rest is added.

    Seen on the cluster (46 for 45): X and Y conflict; one session extends X (+1, "X2"),
    another merges X into Y's line ("M", +1 of its own) and deletes X. The extended leaf
    forks from before X, but X's +1 is counted: it is merged from X, not from the fork.
    """
    tree = [
        tree_doc(5, "a", "", 4, cm_write="t5"),
        tree_doc(6, "1", "a", 5, cm_write="X", cm_counted=["t5"]),
        tree_doc(6, "2", "a", 5, cm_write="Y", cm_counted=["t5"]),
        tree_doc(7, "b", "1a", 6, cm_write="X2", cm_counted=["X", "t5"]),
        tombstone(7, "c", "1a"),
        tree_doc(7, "d", "2a", 6, cm_write="Y2", cm_counted=["Y", "t5"]),
        tree_doc(
            8,
            "e",
            "d2a",
            8,
            cm_write="M",
            cm_merged=["6-" + "1" * 32],
            cm_counted=["X", "Y2", "Y", "t5"],
        ),
        tree_doc(9, "f", "ed2a", 9, cm_write="N", cm_counted=["M", "X", "Y2", "Y", "t5"]),
    ]
    backend.bulk_docs(tree, new_edits=False)
    with cm.Session(backend) as s:
        merged = s.get(MergedTally, "doc")
        assert merged is not None and cm.conflicts(merged) == ["7-" + "b" * 32]
    after = stored(backend)
    assert after["count"] == 4 + 6 and "_conflicts" not in after  # X, Y, X2, Y2, M, N: once


def test_resolutions_of_resolutions_count_each_edit_once(backend: Backend) -> None:
    """Two resolutions each merging a third that merged a loser: every edit counts once.

    Seen on the cluster (44 for 45): P and Q both merged loser A (each +1 of its own); R and
    S both merged P into Q (each +1). Merging R into S from their fork Q must add R's +1
    only: P's edits are in S, and A is in Q (the fork) and in P.
    """
    p_rev = "10-" + "5" * 32
    tree = [
        tree_doc(7, "a", "", 6, cm_write="t7"),
        tree_doc(8, "b", "a", 7, cm_write="A", cm_counted=["t7"]),
        tree_doc(8, "c", "a", 7, cm_write="B", cm_counted=["t7"]),
        tombstone(9, "d", "ba"),
        tree_doc(9, "e", "ca", 8, cm_write="C", cm_counted=["B", "t7"]),
        tree_doc(
            10,
            "5",
            "eca",
            10,
            cm_write="P",
            cm_merged=["8-" + "b" * 32],
            cm_counted=["A", "C", "B", "t7"],
        ),
        tree_doc(
            10,
            "6",
            "eca",
            10,
            cm_write="Q",
            cm_merged=["8-" + "b" * 32],
            cm_counted=["A", "C", "B", "t7"],
        ),
        tombstone(11, "7", "5eca"),
        tree_doc(
            11,
            "8",
            "6eca",
            12,
            cm_write="R",
            cm_merged=[p_rev],
            cm_counted=["P", "A", "Q", "C", "B", "t7"],
        ),
        tree_doc(
            11,
            "9",
            "6eca",
            12,
            cm_write="S",
            cm_merged=[p_rev],
            cm_counted=["P", "A", "Q", "C", "B", "t7"],
        ),
    ]
    backend.bulk_docs(tree, new_edits=False)
    with cm.Session(backend) as s:
        merged = s.get(MergedTally, "doc")
        assert merged is not None and cm.conflicts(merged) == ["11-" + "8" * 32]
    after = stored(backend)
    assert after["count"] == 6 + 7 and "_conflicts" not in after  # A B C P Q R S: once each


def test_an_owed_loser_whose_first_write_was_merged_adds_only_the_rest(
    request: pytest.FixtureRequest, backend: Backend
) -> None:
    """An owed loser (deleted by us, our winner refused) whose first write another merged.

    Seen on the cluster (46 for 45): the loser's branch is X then Z. Another session merged
    X alone (its copies did not have Z yet) with a +1 of its own, and a third wrote on top.
    The retry merges the owed branch from X: Z and this session's +1 are added, X is not.
    """
    loser = "16-" + "3" * 32
    tree = [
        tree_doc(14, "a", "", 13, cm_write="t14"),
        tree_doc(15, "1", "a", 14, cm_write="X", cm_counted=["t14"]),
        tree_doc(15, "2", "a", 14, cm_write="Y", cm_counted=["t14"]),
        tree_doc(16, "3", "1a", 15, cm_write="Z", cm_counted=["X", "t14"]),
        tree_doc(16, "4", "2a", 15, cm_write="W0", cm_counted=["Y", "t14"]),
    ]
    backend.bulk_docs(tree, new_edits=False)
    s = cm.Session(backend, conflict="rebase")
    tally = s.get(MergedTally, "doc")
    assert tally is not None and cm.conflicts(tally) == [loser]
    tally.count += 1
    plain_bulk = backend.bulk_docs
    done: list[bool] = []

    def others_first(docs: Sequence[dict[str, Any]], **options: Any) -> Any:
        if not done:
            done.append(True)
            body = {"_id": "doc", "type": "conflict-merged", "tags": []}
            merged_x = {
                **body,
                "_rev": "16-" + "4" * 32,
                "count": 17,  # X's +1 and one of its own
                "cm_write": "R",
                "cm_merged": ["15-" + "1" * 32],
                "cm_counted": ["X", "W0", "Y", "t14"],
            }
            (answer,) = plain_bulk([merged_x])
            on_top = {**body, "_rev": answer["rev"], "count": 18, "cm_write": "N"}
            (answer,) = plain_bulk([{**on_top, "cm_counted": ["R", "X", "W0", "Y", "t14"]}])
            assert answer.get("ok"), answer
        return plain_bulk(docs, **options)

    backend.bulk_docs = others_first  # type: ignore[method-assign]
    sent = record_bulk_docs(backend)
    s.flush()
    first, retry = sent
    assert [(d["_rev"], d.get("_deleted", False)) for d in first][1] == (loser, True)
    assert [d["count"] for d in retry] == [20]  # 13 + X Y W0 Z R N + ours: X once
    after = stored(backend)
    assert after["count"] == 20 and tally.count == 20
    if not is_pouchdb(request, backend):  # pouchdb: a phantom leaf, as above
        assert "_conflicts" not in after


@pytest.mark.parametrize(
    ("first", "later", "z_count"),
    [("1", "2", None), ("2", "1", None), ("2", "1", 12)],
    ids=["later-wins", "earlier-wins", "earlier-on-another-branch"],
)
def test_an_earlier_attempt_stored_beside_a_later_one_counts_once(
    backend: Backend, first: str, later: str, z_count: int | None
) -> None:
    """Two attempts of one session's edits stored as two leaves: the first counts once.

    Attempt A1 (+1) was refused but stored on one copy; the next flush, with one more +1,
    wrote A2, whose ``cm_counted`` lists A1. Whichever leaf wins, A1's +1 counts once (and
    when A1 sits on another writer's branch, Z's +2 still counts).
    """
    tree = [tree_doc(1, "a", "", 10, cm_write="t0")]
    a1_parents = "a"
    if z_count is not None:
        tree.append(tree_doc(2, "3", "a", z_count, cm_write="Z", cm_counted=["t0"]))
        a1_parents = "3a"
    a1_pos = len(a1_parents) + 1
    a1_count = (z_count or 10) + 1
    tree.append(tree_doc(a1_pos, first, a1_parents, a1_count, cm_write="A1", cm_counted=["t0"]))
    tree.append(tree_doc(2, later, "a", 12, cm_write="A2", cm_counted=["A1", "t0"]))
    backend.bulk_docs(tree, new_edits=False)
    with cm.Session(backend) as s:
        merged = s.get(MergedTally, "doc")
        assert merged is not None and len(cm.conflicts(merged)) == 1
    after = stored(backend)
    assert after["count"] == 10 + 2 + (z_count - 10 if z_count else 0)
    assert "_conflicts" not in after


def test_the_newest_stored_attempt_decides_what_is_left_to_write(backend: Backend) -> None:
    """Both attempts merged elsewhere: the second flush sends nothing more.

    Flush 1 (+1, token A1) is refused; after another +1 flush 2 (token A2, listing A1) meets
    a resolution that merged both attempts. ``cm_counted`` lists A1 before A2 there: the
    newest attempt found (A2, all the edits) decides, so nothing is re-applied.
    """
    backend.bulk_docs([tree_doc(1, "a", "", 10, cm_write="t0")], new_edits=False)
    s = cm.Session(backend, conflict="raise")
    tally = s.get(MergedTally, "doc")
    assert tally is not None
    tally.count += 1
    plain_bulk = backend.bulk_docs
    calls: list[str] = []

    def cluster(docs: Sequence[dict[str, Any]], **options: Any) -> Any:
        calls.append(docs[0]["cm_write"])
        if len(calls) == 1:
            return [{"id": "doc", "error": "conflict", "reason": "Document update conflict."}]
        if len(calls) == 2:  # both attempts merged by another session, with +5 of its own
            merged = tree_doc(2, "f", "a", 17, cm_write="R", cm_counted=[calls[0], calls[1], "t0"])
            plain_bulk([merged], new_edits=False)
        return plain_bulk(docs, **options)

    backend.bulk_docs = cluster  # type: ignore[method-assign]
    with pytest.raises(cm.FlushError):
        s.flush()
    tally.count += 1
    s.conflict = "rebase"
    (result,) = s.flush()
    assert len(calls) == 2 and calls[0] != calls[1]  # nothing sent after the second attempt
    assert result.rev == "2-" + "f" * 32 and tally.count == 17
    assert stored(backend)["count"] == 17


def test_a_second_round_refused_keeps_the_deleted_loser_owed(
    request: pytest.FixtureRequest, backend: Backend
) -> None:
    """Round 2 of a resolution: winner refused, loser deleted; the loser is merged after.

    Round 1 wrote the merged winner but the loser's deletion was refused (extended by +2);
    round 2 deleted the extended loser while its winner met a +100 written meanwhile. The
    extended loser's +2 is owed to round 3: 10 + 5 + 3 + 2 + 100.
    """
    tree = [
        tree_doc(1, "a", "", 10),
        tree_doc(2, "e", "a", 15, cm_write="winner"),
        tree_doc(2, "b", "a", 13, cm_write="loser"),
    ]
    backend.bulk_docs(tree, new_edits=False)
    plain_bulk = backend.bulk_docs
    rounds: list[int] = []

    def meddling(docs: Sequence[dict[str, Any]], **options: Any) -> Any:
        rounds.append(len(docs))
        body = {"_id": "doc", "type": "conflict-merged", "tags": []}
        if len(rounds) == 1:  # another writer extends the loser: its deletion is refused
            plain_bulk([{**body, "_rev": "2-" + "b" * 32, "count": 15, "cm_write": "more"}])
        elif len(rounds) == 2:  # another writer writes on our merged winner
            current = backend.get("doc")
            plain_bulk([{**current, "count": current["count"] + 100, "cm_write": "w100"}])
        return plain_bulk(docs, **options)

    backend.bulk_docs = meddling  # type: ignore[method-assign]
    s = cm.Session(backend)
    assert s.get(MergedTally, "doc") is not None
    (result,) = s.flush()
    after = stored(backend)
    assert after["count"] == 10 + 5 + 3 + 2 + 100 and result.rev == after["_rev"]
    if is_pouchdb(request, backend):  # the refused winner is a leaf without a body there
        listed = after.get("_conflicts", [])  # pouchdb lists a phantom, or none
        phantoms: Any = backend.get("doc", open_revs=listed) if listed else []
        assert [row.get("missing") for row in phantoms] == listed
    else:
        assert "_conflicts" not in after


def test_a_resolution_written_twice_in_one_flush_gives_one_result(backend: Backend) -> None:
    """A loser extended while the flush resolves: resolved again, one result for the doc.

    The merged winner is written, the loser's deletion refused (another writer extended the
    loser meanwhile); the flush resolves again on its own new revision, merging only what
    was added to the loser. ``flush()`` returns the document's last write.
    """
    tree = [
        tree_doc(1, "a", "", 10),
        tree_doc(2, "e", "a", 15, cm_write="winner"),  # +5
        tree_doc(2, "b", "a", 13, cm_write="loser"),  # +3
    ]
    backend.bulk_docs(tree, new_edits=False)
    plain_bulk = backend.bulk_docs
    extended: list[str] = []

    def loser_extended_first(docs: Sequence[dict[str, Any]], **options: Any) -> Any:
        if not extended:
            loser = {"_id": "doc", "type": "conflict-merged", "tags": [], "cm_write": "more"}
            (answer,) = plain_bulk([{**loser, "_rev": "2-" + "b" * 32, "count": 15}])  # +2
            extended.append(answer["rev"])
        return plain_bulk(docs, **options)

    backend.bulk_docs = loser_extended_first  # type: ignore[method-assign]
    sent = record_bulk_docs(backend)
    s = cm.Session(backend)
    merged = s.get(MergedTally, "doc")
    assert merged is not None
    results = s.flush()
    first, again = sent
    assert [d.get("_deleted", False) for d in first] == [False, True]
    assert [(d["_rev"], d.get("_deleted", False)) for d in again[1:]] == [(extended[0], True)]
    after = stored(backend)
    assert after["count"] == 10 + 5 + 3 + 2 and "_conflicts" not in after
    assert [(r.doc_id, r.rev) for r in results] == [("doc", after["_rev"])]
    assert merged.rev == after["_rev"]


def test_deleting_a_resolved_class_deletes_every_leaf(backend: Backend) -> None:
    """Deleting a document marked for resolution deletes every leaf: no loser comes back."""
    branches(backend, "conflict-merged")
    sent = record_bulk_docs(backend)
    with cm.Session(backend) as s:
        doc = s.get(MergedTally, "doc")
        assert doc is not None
        s.delete(doc)
    (request,) = sent
    assert sorted(d["_rev"] for d in request) == [LEFT_REV, RIGHT_REV]
    assert all(d["_deleted"] for d in request)
    assert leaves(backend) == []
    with pytest.raises(cm.DocumentNotFound):
        backend.get("doc")


@pytest.mark.parametrize("mine_id", ["1" * 32, "3" * 32], ids=["loses", "wins"])
def test_a_409_for_a_stored_write_is_not_applied_twice(backend: Backend, mine_id: str) -> None:
    """A 409 for a write one copy stored (a cluster's quorum): found by its token, no rebase."""
    backend.bulk_docs([{"_id": "t", "type": "conflict-tally", "count": 0}])
    s = cm.Session(backend, conflict="rebase")
    tally = s.get(Tally, "t")
    assert tally is not None and tally.rev is not None
    tally.count += 1
    parent = tally.rev.split("-")[1]
    plain_bulk = backend.bulk_docs

    def cluster_like(
        docs: Sequence[dict[str, Any]], *, new_edits: bool = True
    ) -> list[dict[str, Any]]:
        """Store the write beside another writer's revision, and answer 409 for it."""
        backend.bulk_docs = plain_bulk  # type: ignore[method-assign]  # once
        (doc,) = docs
        history = {"start": 2, "ids": [mine_id, parent]}
        other = {"start": 2, "ids": ["2" * 32, parent]}
        plain_bulk(
            [
                {**doc, "_rev": f"2-{mine_id}", "_revisions": history},
                {**doc, "cm_write": "another", "_rev": f"2-{'2' * 32}", "_revisions": other},
            ],
            new_edits=False,
        )
        return [{"id": "t", "error": "conflict", "reason": "Document update conflict."}]

    backend.bulk_docs = cluster_like  # type: ignore[method-assign]
    (result,) = s.flush()
    assert (result.rev, result.accepted) == (f"2-{mine_id}", True)
    assert tally.rev == f"2-{mine_id}" and len(leaves(backend, "t")) == 2
    with cm.Session(backend) as resolver:
        found = resolver.get(Tally, "t")
        assert found is not None
        resolver.resolve(found)
    assert stored(backend, "t")["count"] == 2  # two writers, +1 each: not 3


Bulk = Callable[..., list[dict[str, Any]]]


def refuse_once(backend: Backend, then: Callable[[Bulk, dict[str, Any]], None]) -> Bulk:
    """The next ``_bulk_docs`` of one document is answered 409, after ``then(bulk, doc)`` ran.

    ``then`` plays the cluster: another writer's revision, the refused write stored on one
    copy, a resolution. Returns the plain ``bulk_docs`` (for writes made later, as a copy).
    """
    plain_bulk = backend.bulk_docs
    refused: list[str] = []

    def cluster_like(docs: Sequence[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
        if refused:
            return plain_bulk(docs, **options)
        (doc,) = docs
        refused.append(doc["_id"])
        then(plain_bulk, dict(doc))
        return [{"id": doc["_id"], "error": "conflict", "reason": "Document update conflict."}]

    backend.bulk_docs = cluster_like  # type: ignore[method-assign]
    return plain_bulk


def another_writer(bulk: Bulk, doc: dict[str, Any]) -> None:
    """Another session's +1 on the same revision, written first (through another node)."""
    (answer,) = bulk([{**doc, "count": doc["count"], "cm_write": "another"}])
    assert answer.get("ok"), answer


def kept_and_another_writer(
    refused: list[dict[str, Any]],
) -> Callable[[Bulk, dict[str, Any]], None]:
    """Keep the refused write in ``refused``, then :func:`another_writer`."""

    def then(bulk: Bulk, doc: dict[str, Any]) -> None:
        refused.append(doc)
        another_writer(bulk, doc)

    return then


def store_stray(bulk: Bulk, doc: dict[str, Any], rev_id: str = "1" * 32) -> str:
    """``doc`` stored as a child of its parent, beside the winner: the copy that kept it."""
    pos, parent = str(doc["_rev"]).split("-")
    rev = f"{int(pos) + 1}-{rev_id}"
    revisions = {"start": int(pos) + 1, "ids": [rev_id, parent]}
    bulk([{**doc, "_rev": rev, "_revisions": revisions}], new_edits=False)
    return rev


def resolve_elsewhere(backend: Backend, doc_id: str = "t") -> dict[str, Any]:
    """Another session loads the document and resolves its conflicts; the stored result."""
    with cm.Session(backend) as other:
        found = other.get(Tally, doc_id)
        assert found is not None and cm.conflicts(found)
        other.resolve(found)
    return stored(backend, doc_id)


def test_a_refused_write_that_surfaces_after_the_retry_is_counted_once(backend: Backend) -> None:
    """A 409 for a write one copy stored, seen only after the retry: a resolution skips it.

    The coordinator answered 409 and the session found no trace of its write (the copy that
    stored it had not passed it on yet), so it wrote its edit again on the current revision,
    with the same ``cm_write`` token. When the stored attempt reaches the other copies it is
    a losing leaf whose edit the winner holds: the resolution deletes it and adds nothing.
    """
    backend.bulk_docs([{"_id": "t", "type": "conflict-tally", "count": 0}])
    s = cm.Session(backend, conflict="rebase")
    tally = s.get(Tally, "t")
    assert tally is not None and tally.rev is not None
    parent = tally.rev
    tally.count += 1
    refused: list[dict[str, Any]] = []
    plain_bulk = refuse_once(backend, kept_and_another_writer(refused))
    sent = record_bulk_docs(backend)
    s.flush()
    ((first,), (retry,)) = sent
    assert first == refused[0]
    assert retry["cm_write"] == refused[0]["cm_write"] and retry["_rev"] != parent
    assert tally.count == 2 and stored(backend, "t")["count"] == 2
    stray = store_stray(plain_bulk, refused[0])  # the refused attempt reaches the others
    assert len(leaves(backend, "t")) == 2
    after = resolve_elsewhere(backend)
    assert after["count"] == 2 and "_conflicts" not in after  # +1 each: not 3
    assert after["cm_merged"] == [stray]
    assert retry["cm_write"] in after["cm_counted"].split()


def test_a_refused_write_merged_before_the_retry_is_not_sent_again(backend: Backend) -> None:
    """A 409 for a write one copy stored and a resolution already merged: found, not resent.

    The winner's ``cm_counted`` lists the merged attempt's token: the session takes the
    winner as its write instead of adding its edit a second time.
    """
    backend.bulk_docs([{"_id": "t", "type": "conflict-tally", "count": 0}])
    s = cm.Session(backend, conflict="rebase")
    tally = s.get(Tally, "t")
    assert tally is not None
    tally.count += 1
    resolved: list[dict[str, Any]] = []

    def cluster(bulk: Bulk, doc: dict[str, Any]) -> None:
        another_writer(bulk, doc)
        store_stray(bulk, doc)
        resolved.append(resolve_elsewhere(backend))

    refuse_once(backend, cluster)
    sent = record_bulk_docs(backend)
    (result,) = s.flush()
    (attempt,), resolution = sent  # the refused write, the other session's: nothing again
    assert [d.get("_deleted", False) for d in resolution] == [False, True]
    assert attempt["cm_write"] in resolution[0]["cm_counted"].split()
    (merged,) = resolved
    assert merged["count"] == 2 and "_conflicts" not in merged
    assert (result.rev, tally.rev, tally.count) == (merged["_rev"], merged["_rev"], 2)
    assert not cm.changes(tally)
    assert stored(backend, "t")["count"] == 2


def test_edits_made_after_a_refused_write_was_merged_are_added_alone(backend: Backend) -> None:
    """A refused attempt merged elsewhere, then more edits: only the later ones are re-applied.

    The first flush reports the conflict (policy raise) and keeps the +1 pending. Meanwhile
    the refused attempt surfaced and was merged. After another +1 the next flush finds the
    first attempt's token in the winner: it adds the second +1 only.
    """
    backend.bulk_docs([{"_id": "t", "type": "conflict-tally", "count": 0}])
    s = cm.Session(backend, conflict="raise")
    tally = s.get(Tally, "t")
    assert tally is not None
    tally.count += 1
    refused: list[dict[str, Any]] = []
    plain_bulk = refuse_once(backend, kept_and_another_writer(refused))
    with pytest.raises(cm.FlushError):
        s.flush()
    store_stray(plain_bulk, refused[0])
    assert resolve_elsewhere(backend)["count"] == 2
    tally.count += 1  # 2 more than loaded: the first +1 is stored, the second is not
    s.conflict = "rebase"
    sent = record_bulk_docs(backend)
    s.flush()
    assert [d["count"] for docs in sent for d in docs][-1] == 3
    assert sent[-1][0]["cm_write"] != refused[0]["cm_write"]  # other edits: another token
    assert refused[0]["cm_write"] in sent[-1][0]["cm_counted"].split()
    assert tally.count == 3 and stored(backend, "t")["count"] == 3
