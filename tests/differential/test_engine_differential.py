"""Differential fuzzing: random document operations on the memory engine and Apache CouchDB.

A Hypothesis state machine sends every operation to both (CouchDB over HTTP, the engine through
its in-process HTTP facade) and compares the answers (``_differ.Differ``). Doc ids come from a
small pool so operations collide; values mix JSON types so collation matters. The engine
computes CouchDB's rev hashes, so a rev an operation needs ("the current rev of doc k", "the
n-th rev doc k was given") is picked from CouchDB's answers and must be the engine's too.

``FUZZ_EXAMPLES`` sets the number of examples (``make fuzz``); without it a small, fixed-seed
run keeps ``make test-couchdb`` short.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from differential._differ import Answer, Differ, doc_path

IDS = ("a", "B", "b", "c1", "c10", "é")
ABSENT_IDS = ("", "0", "b0", "c", "z", "\uffff")
VALUES: tuple[Any, ...] = (
    None, False, True, -1, 0, 1, 2.5, 10, "", "a", "B", "b", "10", "é",
    [], [1], ["a"], {}, {"x": 1},
)  # fmt: skip
FIELDS = ("f", "g")
ATTACHMENTS = ("a.txt", "b.bin")
# Rev hashes this machine makes up for new_edits=false branches: a small choice per step, the
# hash derived from the parent rev (DEVIATIONS["one-parent-per-rev"]), so branches collide.
CHOICES = st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=3)
UNKNOWN_REV = f"1-{hashlib.md5(b'fuzz').hexdigest()}"


def _made_up_path(parent: str | None, choices: list[int]) -> list[str]:
    """Revs grown from ``parent`` (None: a new root), one per choice, oldest first."""
    revs: list[str] = []
    generation = int(parent.partition("-")[0]) if parent else 0
    for choice in choices:
        generation += 1
        digest = hashlib.md5(f"{parent or ''}/{choice}".encode()).hexdigest()
        parent = f"{generation}-{digest}"
        revs.append(parent)
    return revs


ids = st.sampled_from(IDS)
values = st.sampled_from(VALUES)
bodies = st.fixed_dictionaries({}, optional={name: values for name in FIELDS})
picks = st.integers(min_value=0, max_value=50)
rev_kinds = st.sampled_from(["none", "current", "known", "malformed", "missing"])

_OPS = ("$eq", "$gt", "$gte", "$lt", "$lte", "$ne")
_leaf = st.one_of(
    st.builds(
        lambda f, op, v: {f: {op: v}}, st.sampled_from(FIELDS), st.sampled_from(_OPS), values
    ),
    st.builds(lambda f, v: {f: v}, st.sampled_from(FIELDS), values),
    st.builds(
        lambda f, vs: {f: {"$in": vs}},
        st.sampled_from(FIELDS),
        # DEVIATIONS["in-null-with-index"]: no null and no array in $in.
        st.lists(
            st.sampled_from([v for v in VALUES if v is not None and not isinstance(v, list)]),
            min_size=1,
            max_size=3,
        ),
    ),
    st.builds(lambda f, b: {f: {"$exists": b}}, st.sampled_from(FIELDS), st.booleans()),
)
selectors = st.recursive(
    _leaf,
    lambda inner: st.builds(
        lambda op, parts: {op: parts},
        st.sampled_from(["$and", "$or"]),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=4,
)


def _phases() -> tuple[Phase, ...]:
    """Every phase, or none of the shrinking with ``FUZZ_SHRINK=0`` (a quick local look)."""
    if os.environ.get("FUZZ_SHRINK", "").strip() == "0":
        return (Phase.explicit, Phase.generate)
    return tuple(Phase)


def _examples() -> tuple[int, bool]:
    """How many examples, and whether the run is derandomized (fixed seed: no FUZZ_EXAMPLES)."""
    text = os.environ.get("FUZZ_EXAMPLES", "").strip()
    return (int(text), False) if text else (30, True)


class EngineAgainstCouchDB(RuleBasedStateMachine):
    """Both targets get the same operations; every pair of answers must agree."""

    couchdb_url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.db = f"cm-fuzz-{uuid.uuid4().hex}"
        self.differ = Differ(self.couchdb_url, self.db)
        self.revs: dict[str, list[str]] = {}  # every rev each doc was given, in order
        self.seqs: list[str] = []  # CouchDB's last_seq of earlier _changes answers
        self.engine_seqs: list[str] = []  # the engine's, at the same positions
        self.indexed = False
        self.check("PUT", f"/{self.db}")

    # -- plumbing -----------------------------------------------------------------------

    def check(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        *,
        engine_query: dict[str, str] | None = None,
        unordered: str | None = None,
    ) -> tuple[Answer, Answer]:
        """One request to both sides; fail with both answers when they differ."""
        couch, mine, problems = self.differ.call(
            method, path, query, body, engine_query=engine_query, unordered=unordered
        )
        if problems:
            lines = [
                f"{method} {path} {query or ''} {json.dumps(body)[:600]}",
                f"CouchDB: {couch.status} {_show(couch.body)}",
                f"engine:  {mine.status} {_show(mine.body)}",
                *problems,
            ]
            raise AssertionError("\n".join(lines))
        return couch, mine

    def learn(self, doc_id: str, answer: Any) -> None:
        """Keep the rev a write answer gave ``doc_id``."""
        if isinstance(answer, dict) and isinstance(answer.get("rev"), str):
            known = self.revs.setdefault(doc_id, [])
            if answer["rev"] not in known:
                known.append(answer["rev"])

    def current_rev(self, doc_id: str) -> str | None:
        """The winning rev of ``doc_id`` (a compared GET); None when missing or deleted."""
        couch, _ = self.check("GET", doc_path(self.db, doc_id))
        return couch.body.get("_rev") if couch.status == 200 else None

    def rev_for(self, doc_id: str, kind: str, pick: int) -> str | None:
        """A rev to send for ``doc_id``, chosen symbolically by ``kind``."""
        if kind == "current":
            return self.current_rev(doc_id)
        if kind == "known":
            known = self.revs.get(doc_id) or []
            return known[pick % len(known)] if known else None
        if kind == "malformed":
            return "nope"
        if kind == "missing" and doc_id in self.revs:  # DEVIATIONS["rev-on-missing-doc"]
            return f"1-{'f' * 32}"
        return None

    def teardown(self) -> None:
        """Delete the CouchDB database (the engine's dies with the machine)."""
        try:
            self.differ.couch.request("DELETE", f"/{self.db}", None)
        finally:
            self.differ.close()

    # -- writes ---------------------------------------------------------------------------

    @rule(
        doc_id=ids,
        body=bodies,
        kind=rev_kinds,
        pick=picks,
        attachment=st.sampled_from([None, "inline", "stub"]),
        att=st.sampled_from(ATTACHMENTS),
    )
    def put(
        self,
        *,
        doc_id: str,
        body: dict[str, Any],
        kind: str,
        pick: int,
        attachment: str | None,
        att: str,
    ) -> None:
        """PUT a doc without a rev, with the current or an old one, or with a bad rev."""
        doc = dict(body)
        rev = self.rev_for(doc_id, kind, pick)
        if rev is not None:
            doc["_rev"] = rev
        if attachment == "inline":
            data = base64.b64encode(f"{att}:{json.dumps(body)}".encode()).decode()
            doc["_attachments"] = {att: {"content_type": "text/plain", "data": data}}
        elif attachment == "stub" and (rev is not None or doc_id not in self.revs):
            # DEVIATIONS["stub-on-revive"]: no stub without a rev on an id that existed.
            doc["_attachments"] = {att: {"stub": True}}
        couch, _ = self.check("PUT", doc_path(self.db, doc_id), body=doc)
        self.learn(doc_id, couch.body)

    @rule(
        entries=st.lists(
            st.tuples(
                ids, st.sampled_from(["create", "update", "old", "delete", "bad"]), bodies, picks
            ),
            min_size=1,
            max_size=4,
            unique_by=lambda entry: entry[0],  # DEVIATIONS["same-id-twice-in-bulk"]
        )
    )
    def bulk_docs(self, entries: list[tuple[str, str, dict[str, Any], int]]) -> None:
        """``_bulk_docs`` with mixed creates, updates, deletes and bad revs."""
        docs = []
        for doc_id, kind, body, pick in entries:
            doc: dict[str, Any] = {"_id": doc_id, **body}
            rev = {
                "create": None,
                "update": self.rev_for(doc_id, "current", pick),
                "old": self.rev_for(doc_id, "known", pick),
                "delete": self.rev_for(doc_id, "current", pick),
                "bad": self.rev_for(doc_id, "missing", pick),
            }[kind]
            if rev is not None:
                doc["_rev"] = rev
            if kind == "delete":
                doc["_deleted"] = True
            docs.append(doc)
        couch, _ = self.check("POST", f"/{self.db}/_bulk_docs", body={"docs": docs})
        if isinstance(couch.body, list):
            for doc, result in zip(docs, couch.body, strict=False):
                self.learn(doc["_id"], result)

    @rule(
        doc_id=ids,
        body=bodies,
        base=st.one_of(st.none(), picks),
        choices=CHOICES,
        deleted=st.booleans(),
        via_bulk=st.booleans(),
    )
    def new_edits_false(
        self,
        *,
        doc_id: str,
        body: dict[str, Any],
        base: int | None,
        choices: list[int],
        deleted: bool,
        via_bulk: bool,
    ) -> None:
        """A replicated branch (``new_edits=false``): a new root or grown from a known rev."""
        known = self.revs.get(doc_id) or []
        parent = known[base % len(known)] if base is not None and known else None
        path = _made_up_path(parent, choices)
        if parent is not None:
            path.insert(0, parent)
        ids_ = [rev.partition("-")[2] for rev in reversed(path)]
        start = int(path[-1].partition("-")[0])
        doc: dict[str, Any] = {
            "_id": doc_id,
            "_rev": f"{start}-{ids_[0]}",
            "_revisions": {"start": start, "ids": ids_},
            **body,
        }
        if deleted:
            doc["_deleted"] = True
        if via_bulk:
            body_ = {"docs": [doc], "new_edits": False}
            couch, _ = self.check("POST", f"/{self.db}/_bulk_docs", body=body_)
        else:
            query = {"new_edits": "false"}
            couch, _ = self.check("PUT", doc_path(self.db, doc_id), query, doc)
        if couch.status in (200, 201):
            self.learn(doc_id, {"rev": doc["_rev"]})

    @rule(doc_id=ids, kind=rev_kinds, pick=picks)
    def delete(self, doc_id: str, kind: str, pick: int) -> None:
        """DELETE a doc with the current, an old, a bad or no rev."""
        rev = self.rev_for(doc_id, kind, pick)
        query = {"rev": rev} if rev is not None else {}
        couch, _ = self.check("DELETE", doc_path(self.db, doc_id), query)
        self.learn(doc_id, couch.body)

    # -- reads ----------------------------------------------------------------------------

    @rule(
        doc_id=ids,
        options=st.sets(
            st.sampled_from(
                [
                    "rev",
                    "revs",
                    "revs_info",
                    "conflicts",
                    "deleted_conflicts",
                    "attachments",
                    "open_revs_all",
                    "open_revs_list",
                    "latest",
                    "meta",
                    "att_encoding_info",
                    "local_seq",
                ]
            ),
            max_size=3,
        ),
        pick=picks,
    )
    def get(self, doc_id: str, options: set[str], pick: int) -> None:
        """GET a doc with a random mix of rev, revs, conflicts, open_revs and attachments."""
        known = self.revs.get(doc_id) or [UNKNOWN_REV]
        query: dict[str, str] = {}
        for name in sorted(options):
            if name == "rev":
                query["rev"] = known[pick % len(known)]
            elif name == "open_revs_all":
                query["open_revs"] = "all"
            elif name == "open_revs_list":
                chosen = sorted({known[pick % len(known)], known[-1]})
                query["open_revs"] = json.dumps(chosen)
            else:
                query[name] = "true"
        self.check("GET", doc_path(self.db, doc_id), query)

    @rule(doc_id=ids, att=st.sampled_from(ATTACHMENTS))
    def get_attachment(self, doc_id: str, att: str) -> None:
        """GET an attachment's bytes."""
        self.check("GET", doc_path(self.db, doc_id, att))

    @rule(
        start=st.one_of(st.none(), st.sampled_from(IDS + ABSENT_IDS)),
        end=st.one_of(st.none(), st.sampled_from(IDS + ABSENT_IDS)),
        limit=st.one_of(st.none(), st.integers(0, 4)),
        skip=st.one_of(st.none(), st.integers(0, 3)),
        flags=st.sets(
            st.sampled_from(["descending", "include_docs", "inclusive_end_false", "conflicts"])
        ),
        keys=st.one_of(st.none(), st.lists(st.sampled_from(IDS + ABSENT_IDS), max_size=4)),
    )
    def all_docs(
        self,
        *,
        start: str | None,
        end: str | None,
        limit: int | None,
        skip: int | None,
        flags: set[str],
        keys: list[str] | None,
    ) -> None:
        """``_all_docs`` with ranges, limit, skip, descending, keys and include_docs."""
        query: dict[str, str] = {}
        if start is not None:
            query["startkey"] = json.dumps(start)
        if end is not None:
            query["endkey"] = json.dumps(end)
        for name, number in (("limit", limit), ("skip", skip)):
            if number is not None:
                query[name] = str(number)
        if "descending" in flags:
            query["descending"] = "true"
        if "include_docs" in flags:
            query["include_docs"] = "true"
        if "inclusive_end_false" in flags:
            query["inclusive_end"] = "false"
        if "conflicts" in flags:
            query["conflicts"] = "true"
        if keys is None:
            self.check("GET", f"/{self.db}/_all_docs", query)
        else:
            self.check("POST", f"/{self.db}/_all_docs", query, {"keys": keys})

    @rule(fields=st.sampled_from([["f"], ["g"], ["f", "g"]]))
    def create_index(self, fields: list[str]) -> None:
        """A JSON index over one or two fields (``_index``)."""
        self.check("POST", f"/{self.db}/_index", body={"index": {"fields": fields}})
        self.indexed = True

    @precondition(lambda self: self.indexed)
    @rule(
        selector=selectors,
        sort=st.sampled_from([None, [{"f": "asc"}], [{"f": "desc"}], ["f", "g"]]),
        limit=st.one_of(st.none(), st.integers(0, 4)),
        skip=st.one_of(st.none(), st.integers(0, 2)),
        fields=st.sampled_from([None, ["_id", "f"], ["g"]]),
        conflicts=st.booleans(),
    )
    def find(
        self,
        *,
        selector: dict[str, Any],
        sort: list[Any] | None,
        limit: int | None,
        skip: int | None,
        fields: list[str] | None,
        conflicts: bool,
    ) -> None:
        """``_find`` with a random selector, sort, limit, skip and fields over the indexes."""
        query: dict[str, Any] = {"selector": selector}
        if conflicts:
            query["conflicts"] = True
        for name, value in (("sort", sort), ("limit", limit), ("skip", skip), ("fields", fields)):
            if value is not None:
                query[name] = value
        self.check("POST", f"/{self.db}/_find", body=query, unordered=None if sort else "docs")

    @rule(
        since=st.one_of(st.just("0"), st.just("now"), picks),
        include_docs=st.booleans(),
        style=st.sampled_from([None, "all_docs"]),
        extra=st.sets(st.sampled_from(["conflicts", "descending", "limit"]), max_size=2),
    )
    def changes(
        self, since: str | int, include_docs: bool, style: str | None, extra: set[str]
    ) -> None:
        """``_changes`` since 0, now or an earlier answer's ``last_seq``, maybe limited."""
        query: dict[str, str] = {}
        engine_query: dict[str, str] = {}
        if isinstance(since, int):
            if self.seqs:
                query["since"] = self.seqs[since % len(self.seqs)]
                engine_query["since"] = self.engine_seqs[since % len(self.seqs)]
        else:
            query["since"] = engine_query["since"] = since
        if include_docs:
            query["include_docs"] = engine_query["include_docs"] = "true"
        if style is not None:
            query["style"] = engine_query["style"] = style
        for name in sorted(extra):
            query[name] = engine_query[name] = "2" if name == "limit" else "true"
        path = f"/{self.db}/_changes"
        couch, mine = self.check("GET", path, query, engine_query=engine_query)
        if couch.status == 200 and not extra & {"descending", "limit"}:
            # DEVIATIONS["partial-feed-last-seq-as-since"]
            self.seqs.append(couch.body["last_seq"])
            self.engine_seqs.append(mine.body["last_seq"])


def _show(body: Any) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else json.dumps(body)
    return text[:1500]


# pytest's 300 s default is too short for `make fuzz`: about 0.2 s an example, shrinking aside.
@pytest.mark.timeout(300 + 2 * _examples()[0])
def test_engine_answers_like_couchdb(couchdb_url: str) -> None:
    """Random operation sequences get the same answers from the engine and from CouchDB."""
    examples, derandomize = _examples()
    EngineAgainstCouchDB.couchdb_url = couchdb_url
    run_state_machine_as_test(
        EngineAgainstCouchDB,
        settings=settings(
            max_examples=examples,
            stateful_step_count=20,
            derandomize=derandomize,
            deadline=None,
            database=None,
            phases=_phases(),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
