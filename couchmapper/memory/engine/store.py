"""One in-memory database: documents, revisions, local docs, writes and document reads.

Every public method takes the database lock, so a :class:`Database` is safe to share between
threads. Inputs are copied on the way in and outputs are fresh JSON values: nothing a caller
holds ever aliases stored state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from couchmapper._couch.json import json_copy
from couchmapper.exceptions import (
    BackendError,
    ConflictError,
    DocumentNotFound,
    NotFoundError,
    PreconditionFailed,
)
from couchmapper.memory.engine import js
from couchmapper.memory.engine.docs import (
    ParsedDoc,
    Prepared,
    copy_into,
    parse_doc,
    validate_docid,
)
from couchmapper.memory.engine.errors import bad_request
from couchmapper.memory.engine.revs import (
    Attachment,
    DocRecord,
    RevNode,
    format_seq,
    parse_rev,
    rev_hash,
)

__all__ = ["Database", "ParsedDoc", "validate_docid"]


class Database:
    """One database: the document store, its sequence and its derived indexes."""

    def __init__(self, name: str, *, partitioned: bool = False, q: int = 2, n: int = 1) -> None:
        self.name = name
        self.partitioned = partitioned
        self.q = q
        self.n = n
        self.lock = threading.RLock()
        # Notified on every new sequence (longpoll and continuous _changes feeds wait on it).
        self.changed = threading.Condition(self.lock)
        self.docs: dict[str, DocRecord] = {}
        # Ids of the design docs in self.docs, in insertion order (an ordered set).
        self.design_ids: dict[str, None] = {}
        self.local: dict[str, tuple[int, dict[str, Any]]] = {}
        self.seq = 0
        self.purge_seq = 0
        self.revs_limit = 1000
        self.security: dict[str, Any] = {
            "members": {"roles": ["_admin"]},
            "admins": {"roles": ["_admin"]},
        }
        self.start_time = str(int(time.time()))
        # View indexes built so far, keyed by (ddoc id, view name); see views.py.
        self.view_state: dict[Any, Any] = {}
        # Set by MemoryServer.delete: handles still held answer 404 from then on.
        self.deleted = False
        # _find's sorted structures (see ordered.py) and the ids each has yet to apply.
        self.find_state: dict[Any, Any] = {}
        self.dirty_sets: list[dict[str, None]] = []

    # -- writes -------------------------------------------------------------------------

    def bulk_docs(
        self,
        docs: Sequence[Any],
        *,
        new_edits: bool = True,
        prepared: Sequence[Prepared] | None = None,
    ) -> list[dict[str, Any]]:
        """``_bulk_docs``: parse and check everything first (a bad doc rejects all), then write.

        As in CouchDB, a request-level error (a bad ``_local`` rev, a missing attachment stub
        of a replicated doc, a doc without a rev under ``new_edits=false``) changes nothing.
        ``prepared`` holds :func:`~couchmapper.memory.engine.docs.prepare_body` of each doc
        when the caller has already checked them.
        """
        with self.lock:
            if prepared is None:
                parsed = [parse_doc(doc, partitioned=self.partitioned) for doc in docs]
            else:
                parsed = [
                    parse_doc(doc, partitioned=self.partitioned, prepared=ready)
                    for doc, ready in zip(docs, prepared, strict=True)
                ]
            for item in parsed:
                if item.doc_id.startswith("_local/"):
                    _local_number(item)
            if not new_edits:
                for item in parsed:
                    if item.rev is None and item.revisions is None:
                        raise bad_request(
                            "When `new_edits: false`, the document needs `_rev` or "
                            "`_revisions` specified"
                        )
                plans = [self._replication_plan(item) for item in parsed]
                results = [
                    self._replicate(item, plan) for item, plan in zip(parsed, plans, strict=True)
                ]
                return [r for r in results if r is not None]
            start = self.seq
            try:
                return [self.write(item, notify=False) for item in parsed]
            finally:
                # One wake-up per request: waiters run only once the lock is released.
                if self.seq != start:
                    self.changed.notify_all()

    def write(self, item: ParsedDoc, *, notify: bool = True) -> dict[str, Any]:
        """Apply one interactive edit; return ``{ok,id,rev}`` or a per-document error.

        ``notify=False`` leaves waking the ``_changes`` waiters to the caller.
        """
        with self.lock:
            if item.doc_id.startswith("_local/"):
                return self._write_local(item)
            try:
                rev = self._edit(item, notify=notify)
            except BackendError as exc:
                return {"id": item.doc_id, "error": exc.error, "reason": exc.reason}
            return {"ok": True, "id": item.doc_id, "rev": rev}

    def _edit(self, item: ParsedDoc, *, notify: bool = True) -> str:
        """Write one new revision; return its rev."""
        doc_id = item.doc_id
        record = self.docs.get(doc_id)
        parent = self._parent_for(record, item)
        parent_node = record.revs[parent] if record is not None and parent else None
        pos = parent_node.pos + 1 if parent_node is not None else 1
        if parent_node is None and item.revisions and item.rev is None:
            pos = parse_rev(item.revisions[0])[0] + 1
        atts = self._new_attachments(item, parent_node) if item.atts or item.revisions else {}
        design = doc_id.startswith("_design/")
        if design and not item.deleted:
            self._validate_design(item)
        if not design and self.design_ids:
            # CouchDB validates design docs only by their admin-only rule, not by the
            # validate_doc_update functions (couch_db:validate_doc_update).
            self._validate_update(item, record, atts)
        revive = item.rev is None and parent_node is not None
        new_hash = rev_hash(item.body, item.deleted, parent, atts, revive=revive, term=item.term)
        self.seq += 1
        if notify:
            self.changed.notify_all()
        node = RevNode(
            pos, new_hash, parent, body=item.body, deleted=item.deleted, atts=atts, seq=self.seq
        )
        if record is None:
            record = self.docs[doc_id] = DocRecord(doc_id)
            if design:
                self.design_ids[doc_id] = None
        rev = f"{pos}-{new_hash}"
        record.revs[rev] = node
        record.seq = self.seq
        if self.dirty_sets:
            self.touched(doc_id)
        return rev

    def _new_attachments(self, item: ParsedDoc, parent: RevNode | None) -> dict[str, Attachment]:
        # New attachments get the incoming doc's pos + 1 (couch_db:set_new_att_revpos), so a
        # doc re-created on a tombstone without a rev stores them at revpos 1.
        if item.rev is not None:
            incoming = parse_rev(item.rev)[0]
        elif item.revisions:
            incoming = parse_rev(item.revisions[0])[0]
        else:
            incoming = 0
        return self._resolve_attachments(item, parent, incoming + 1)

    def touched(self, doc_id: str) -> None:
        """Note a written (or purged) id for the structures ``_find`` keeps in order."""
        for dirty in self.dirty_sets:
            dirty[doc_id] = None

    def _parent_for(self, record: DocRecord | None, item: ParsedDoc) -> str | None:
        prev = item.rev
        if record is None:
            if prev is not None:
                raise ConflictError(item.doc_id, prev)
            return None
        winner = record.winner()
        if prev is None:
            # A revive grows the deleted winner; a tombstone without a rev is a conflict, even
            # on a deleted doc (couch_db:prep_and_validate_update).
            if winner.deleted and not item.deleted:
                return winner.rev
            raise ConflictError(item.doc_id, None)
        node = record.revs.get(prev)
        if node is None or node not in record.leaves():
            raise ConflictError(item.doc_id, prev)
        if winner.deleted:
            # A deleted doc is only re-created from its root (couch_db_updater:merge_rev_tree),
            # but the named leaf is found first: its stubs are merged (412 missing_stub) before
            # the update conflicts. A deleted leaf of a live doc is extended like any leaf.
            self._resolve_attachments(item, node, node.pos)
            raise ConflictError(item.doc_id, prev)
        return prev

    def _validate_design(self, item: ParsedDoc) -> None:
        js.validate_design_doc(item.body)
        options = item.body.get("options")
        if (
            not self.partitioned
            and isinstance(options, dict)
            and options.get("partitioned") is True
        ):
            reason = "partitioned option cannot be true in a non-partitioned database."
            raise BackendError(400, "invalid_design_doc", reason)

    def _resolve_attachments(
        self, item: ParsedDoc, parent: RevNode | None, pos: int
    ) -> dict[str, Attachment]:
        atts: dict[str, Attachment] = {}
        for name, value in (item.atts or {}).items():
            if value is None:
                kept = parent.atts.get(name) if parent is not None else None
                if kept is None:
                    raise PreconditionFailed(
                        "missing_stub", f"Invalid attachment stub in {item.doc_id} for {name}"
                    )
                atts[name] = kept
            else:
                atts[name] = Attachment(value[0], value[1], pos)
        return atts

    def _validate_update(
        self, item: ParsedDoc, record: DocRecord | None, atts: dict[str, Attachment]
    ) -> None:
        functions: list[str] = []
        for doc_id in self.design_ids:  # not every doc: a write stays O(1) in the db size
            rec = self.docs[doc_id]
            body = rec.winner().body
            source = body.get("validate_doc_update") if body and not rec.winner().deleted else None
            if isinstance(source, str):
                functions.append(source)
        if not functions:
            return
        new_doc = {"_id": item.doc_id, **item.body}
        if item.deleted:
            new_doc["_deleted"] = True
        old_doc = None
        if record is not None and not record.winner().deleted:
            old_doc = self.doc_json(record, record.winner())
        for source in functions:
            js.run_validate(source, new_doc, old_doc, self.name)

    def _replication_plan(self, item: ParsedDoc) -> tuple[list[str], dict[str, Attachment]] | None:
        """Check a ``new_edits=false`` revision without writing: its rev path and attachments.

        None when nothing is to be written (a ``_local`` doc is written elsewhere; a revision
        already stored with its body is skipped). Raises 412 ``missing_stub``.
        """
        path = item.revisions or [item.rev]  # type: ignore[list-item]
        if item.rev is not None and path[0] != item.rev:
            path = [item.rev]
        if item.doc_id.startswith("_local/"):
            return None
        record = self.docs.get(item.doc_id)
        if record is not None and path[0] in record.revs and record.revs[path[0]].body is not None:
            return None
        leaf_pos = parse_rev(path[0])[0]
        parent_node = record.revs.get(path[1]) if record is not None and len(path) > 1 else None
        return path, self._resolve_attachments(item, parent_node, leaf_pos)

    def _replicate(
        self,
        item: ParsedDoc,
        plan: tuple[list[str], dict[str, Attachment]] | None,
        *,
        raise_errors: bool = False,
    ) -> dict[str, Any] | None:
        """Merge a checked ``new_edits=false`` revision (with its history) into the tree.

        Design docs are validated and ``validate_doc_update`` functions run, as CouchDB does
        for replicated updates too; a refusal is a per-document error (with the rev).
        """
        if item.doc_id.startswith("_local/"):
            self._write_local(item)
            return None
        if plan is None:
            return None
        path, atts = plan
        record = self.docs.get(item.doc_id)
        try:
            if item.doc_id.startswith("_design/"):
                if not item.deleted:
                    self._validate_design(item)
            else:
                self._validate_update(item, record, atts)
        except BackendError as exc:
            if raise_errors:
                raise
            return {"id": item.doc_id, "rev": path[0], "error": exc.error, "reason": exc.reason}
        if record is None:
            record = self.docs[item.doc_id] = DocRecord(item.doc_id)
            if item.doc_id.startswith("_design/"):
                self.design_ids[item.doc_id] = None
        self.seq += 1
        self.changed.notify_all()
        chain = list(reversed(path))
        for index, rev in enumerate(chain):
            pos, hash_ = parse_rev(rev)
            parent = chain[index - 1] if index > 0 else None
            is_leaf = index == len(chain) - 1
            existing = record.revs.get(rev)
            if existing is not None and not is_leaf:
                continue
            body = item.body if is_leaf else None
            deleted = item.deleted and is_leaf
            node = RevNode(pos, hash_, parent, body=body, deleted=deleted, atts={}, seq=self.seq)
            if is_leaf:
                node.atts = atts
            record.revs[rev] = node
        record.seq = self.seq
        self.touched(item.doc_id)
        return None

    def _write_local(self, item: ParsedDoc) -> dict[str, Any]:
        number = _local_number(item)
        if item.deleted:
            self.local.pop(item.doc_id, None)
            return {"ok": True, "id": item.doc_id, "rev": "0-0"}
        self.local[item.doc_id] = (number + 1, item.body)
        return {"ok": True, "id": item.doc_id, "rev": f"0-{number + 1}"}

    def put(
        self,
        doc: Any,
        doc_id: str | None = None,
        *,
        new_edits: bool = True,
        prepared: Prepared | None = None,
    ) -> dict[str, Any]:
        """``PUT /db/doc``: one write that raises instead of returning a per-doc error."""
        with self.lock:
            item = parse_doc(doc, doc_id, partitioned=self.partitioned, prepared=prepared)
            if not new_edits:
                if item.rev is None and item.revisions is None:
                    raise bad_request(
                        "When `new_edits: false`, the document needs `_rev` or "
                        "`_revisions` specified"
                    )
                if item.doc_id.startswith("_local/"):
                    _local_number(item)
                self._replicate(item, self._replication_plan(item), raise_errors=True)
                rev = item.rev or (item.revisions or [""])[0]
                return {"ok": True, "id": item.doc_id, "rev": rev}
            if item.doc_id.startswith("_local/"):
                return self._write_local(item)
            return {"ok": True, "id": item.doc_id, "rev": self._edit(item)}

    def delete(self, doc_id: str, rev: str | None) -> dict[str, Any]:
        """``DELETE /db/doc?rev=``: open the winner (404 "deleted"), then write a tombstone."""
        with self.lock:
            if doc_id.startswith("_local/"):
                if doc_id not in self.local:
                    raise DocumentNotFound(doc_id, "missing")
                return self.put({"_deleted": True, "_rev": rev or "0-0"}, doc_id)
            self.open_winner(doc_id)
            doc: dict[str, Any] = {"_deleted": True}
            if rev is not None:
                doc["_rev"] = rev
            return self.put(doc, doc_id)

    # -- reads --------------------------------------------------------------------------

    def open_winner(self, doc_id: str) -> tuple[DocRecord, RevNode]:
        """The record and its winning revision; 404 "missing" or "deleted"."""
        record = self.docs.get(doc_id)
        if record is None:
            raise DocumentNotFound(doc_id, "missing")
        winner = record.winner()
        if winner.deleted:
            raise DocumentNotFound(doc_id, "deleted")
        return record, winner

    def doc_json(
        self,
        record: DocRecord,
        node: RevNode,
        *,
        attachments: bool = False,
        att_encoding_info: bool = False,
        atts_since: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The JSON of one revision (``_id``, ``_rev``, body, ``_deleted``, ``_attachments``)."""
        out: dict[str, Any] = {"_id": record.doc_id, "_rev": node.rev}
        if node.body:
            copy_into(out, node.body)
        if node.deleted:
            out["_deleted"] = True
        if node.atts:
            since_pos = 0
            if atts_since:
                # The newest revision of this doc's own history that the caller names:
                # attachments stored after it carry data, older ones stay stubs.
                known = set(atts_since)
                since_pos = next((n.pos for n in record.ancestry(node.rev) if n.rev in known), 0)
            out["_attachments"] = {
                name: att.to_json(
                    data=attachments and att.revpos > since_pos, encoding_info=att_encoding_info
                )
                for name, att in node.atts.items()
            }
        return out

    def get(self, doc_id: str, **options: Any) -> Any:
        """``GET /db/doc`` with CouchDB's options; ``open_revs`` returns a list."""
        with self.lock:
            if doc_id.startswith("_local/"):
                return self._get_local(doc_id, **options)
            rev = options.get("rev")
            open_revs = options.get("open_revs")
            if open_revs is not None and open_revs != []:
                return self._open_revs(doc_id, open_revs, options)
            record = self.docs.get(doc_id)
            if rev is not None:
                parse_rev(rev)
                node = record.revs.get(rev) if record is not None else None
                if record is None or node is None or node.body is None:
                    raise DocumentNotFound(doc_id, "missing")
            else:
                record, node = self.open_winner(doc_id)
            return self.decorate(record, node, options)

    def decorate(self, record: DocRecord, node: RevNode, options: dict[str, Any]) -> Any:
        meta = bool(options.get("meta"))
        atts_since = options.get("atts_since") or ()
        if not isinstance(atts_since, list | tuple) or not all(
            isinstance(r, str) for r in atts_since
        ):
            raise bad_request("`atts_since` must be a list of revs")
        out = self.doc_json(
            record,
            node,
            attachments=bool(options.get("attachments") or atts_since),
            att_encoding_info=bool(options.get("att_encoding_info")),
            atts_since=atts_since,
        )
        if options.get("revs"):
            out["_revisions"] = record.revisions(node.rev)
        if (options.get("revs_info") or meta) and options.get("rev") is None:
            out["_revs_info"] = record.revs_info(node.rev)
        wants_conflicts = options.get("conflicts") or options.get("deleted_conflicts") or meta
        leaves = record.leaves() if wants_conflicts else []
        if options.get("conflicts") or meta:
            live = [n.rev for n in leaves if not n.deleted and n.rev != node.rev]
            if live and options.get("rev") is None:
                out["_conflicts"] = live
        if options.get("deleted_conflicts") or meta:
            dead = [n.rev for n in leaves if n.deleted and n.rev != node.rev]
            if dead and options.get("rev") is None:
                out["_deleted_conflicts"] = dead
        if options.get("local_seq") and options.get("rev") is None:
            out["_local_seq"] = record.seq  # the doc's last update, whichever rev won
        return out

    def _open_revs(self, doc_id: str, open_revs: Any, options: dict[str, Any]) -> Any:
        record = self.docs.get(doc_id)
        if open_revs == "all":
            if record is None:
                raise DocumentNotFound(doc_id, "missing")
            nodes = sorted(record.leaves(), key=lambda n: (n.pos, n.hash))
            plain = _open_revs_options(options)
            return [{"ok": self.decorate(record, n, plain)} for n in nodes]
        if not isinstance(open_revs, list):
            raise bad_request("invalid UTF-8 JSON")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for rev in open_revs:
            parse_rev(rev)
            node = record.revs.get(rev) if record is not None else None
            if record is None or node is None or node.body is None:
                out.append({"missing": rev})
                continue
            nodes = [node]
            if options.get("latest"):  # every leaf grown from rev in tree order, each once
                grown = [
                    n for n in record.leaves() if rev in {a.rev for a in record.ancestry(n.rev)}
                ]
                nodes = sorted(grown, key=lambda n: (n.pos, n.hash))
            for found in nodes:
                if found.rev not in seen:
                    seen.add(found.rev)
                    plain = _open_revs_options(options)
                    out.append({"ok": self.decorate(record, found, plain)})
        return out

    def _get_local(self, doc_id: str, **options: Any) -> dict[str, Any]:
        found = self.local.get(doc_id)
        if found is None or options.get("rev") is not None:
            raise DocumentNotFound(doc_id, "missing")
        number, body = found
        out: dict[str, Any] = {"_id": doc_id, "_rev": f"0-{number}", **json_copy(body)}
        if options.get("revs"):
            out["_revisions"] = {"start": 0, "ids": [str(number)]}
        return out

    # -- attachments --------------------------------------------------------------------

    def get_attachment(self, doc_id: str, name: str, rev: str | None = None) -> Attachment:
        """The stored attachment of the winner (or of ``rev``); 404s as CouchDB gives them."""
        with self.lock:
            if rev is not None:
                parse_rev(rev)
                record = self.docs.get(doc_id)
                node = record.revs.get(rev) if record is not None else None
                if node is None or node.body is None:
                    raise DocumentNotFound(doc_id, "missing")
            else:
                _, node = self.open_winner(doc_id)
            att = node.atts.get(name)
            if att is None:
                raise NotFoundError("not_found", "Document is missing attachment")
            return att

    def put_attachment(
        self, doc_id: str, name: str, data: bytes, content_type: str, rev: str | None
    ) -> dict[str, Any]:
        """``PUT /db/doc/att``: a new revision with the attachment added or replaced."""
        with self.lock:
            if doc_id.startswith("_local/"):
                raise bad_request("_local documents do not accept attachments.")
            if name.startswith("_"):
                raise bad_request(f"Attachment name '{name}' starts with prohibited character '_'")
            record = self.docs.get(doc_id)
            item = ParsedDoc()
            item.doc_id = validate_docid(doc_id)
            item.rev = rev
            base: RevNode | None = None
            if record is not None:
                winner = record.winner()
                base = record.revs.get(rev) if rev is not None else winner
                if rev is None and winner.deleted:
                    base = None
                    item.rev = None
            if base is not None and base.body is not None:
                item.body = json_copy(base.body, as_stored=True)
                item.atts = {key: None for key in base.atts}
            # CouchDB puts the new attachment first (the order feeds the rev hash).
            others = {key: value for key, value in (item.atts or {}).items() if key != name}
            item.atts = {name: (data, content_type), **others}
            return {"ok": True, "id": doc_id, "rev": self._edit(item)}

    def delete_attachment(self, doc_id: str, name: str, rev: str | None) -> dict[str, Any]:
        """``DELETE /db/doc/att?rev=``: a new revision without the attachment."""
        with self.lock:
            record, winner = self.open_winner(doc_id)
            base = record.revs.get(rev) if rev is not None else None
            if base is None or name not in base.atts:
                if rev is not None and base is None:
                    parse_rev(rev)
                    if name in winner.atts:
                        raise ConflictError(doc_id, rev)
                raise NotFoundError("not_found", "Document is missing attachment")
            item = ParsedDoc()
            item.doc_id = doc_id
            item.rev = rev
            item.body = json_copy(base.body or {}, as_stored=True)
            item.atts = {key: None for key in base.atts if key != name}
            return {"ok": True, "id": doc_id, "rev": self._edit(item)}

    # -- database level -----------------------------------------------------------------

    def live_records(self) -> list[DocRecord]:
        """Records whose winner is not deleted, by raw id order."""
        return [r for _, r in sorted(self.docs.items()) if not r.winner().deleted]

    def info(self) -> dict[str, Any]:
        """``GET /db``."""
        with self.lock:
            live = sum(1 for r in self.docs.values() if not r.winner().deleted)
            size = 4096 + 256 * len(self.docs)
            return {
                "instance_start_time": self.start_time,
                "db_name": self.name,
                "purge_seq": format_seq(self.purge_seq),
                "update_seq": format_seq(self.seq),
                "sizes": {"file": size, "external": size // 4, "active": size // 2},
                "props": {"partitioned": True} if self.partitioned else {},
                "doc_del_count": len(self.docs) - live,
                "doc_count": live,
                "disk_format_version": 8,
                "compact_running": False,
                "cluster": {"q": self.q, "n": self.n, "w": 1, "r": 1},
            }


def _local_number(item: ParsedDoc) -> int:
    """The number of a ``_local`` doc's ``0-N`` rev (0 without one); 500 for another rev."""
    if item.rev is None:
        return 0
    pos, tail = parse_rev(item.rev)
    if pos != 0 or not tail.isdigit():
        raise BackendError(500, "error", "Invalid rev format")
    return int(tail)


# With open_revs CouchDB reads revisions, not the doc's info: the options that describe the
# tree (revs_info, conflicts, deleted_conflicts, meta, local_seq) are ignored.
_NOT_WITH_OPEN_REVS = frozenset(
    {"open_revs", "rev", "revs_info", "conflicts", "deleted_conflicts", "meta", "local_seq"}
)


def _open_revs_options(options: dict[str, Any]) -> dict[str, Any]:
    """The GET options that apply to each revision ``open_revs`` returns."""
    return {k: v for k, v in options.items() if k not in _NOT_WITH_OPEN_REVS}
