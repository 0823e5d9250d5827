"""Replication-side reads and writes of the memory engine: ``_revs_diff`` and ``_purge``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from couchmapper.memory.engine.revs import parse_rev

if TYPE_CHECKING:
    from couchmapper.memory.engine.store import Database

__all__ = ["purge", "revs_diff"]


def revs_diff(db: Database, body: dict[str, Any]) -> dict[str, Any]:
    """``_revs_diff``: the revs we lack, with ``possible_ancestors``."""
    with db.lock:
        out: dict[str, Any] = {}
        for doc_id, revs in body.items():
            record = db.docs.get(doc_id)
            for rev in revs:
                parse_rev(rev)
            known = record.revs if record is not None else {}
            missing = sorted(
                (r for r in set(revs) if r not in known or known[r].body is None),
                key=lambda r: (parse_rev(r)[0], r),
            )
            if not missing:
                continue
            entry: dict[str, Any] = {"missing": missing}
            if record is not None:
                # couch_db:find_missing: a leaf older than any missing rev, in reverse
                # leaf order (the fold prepends).
                highest = max(parse_rev(r)[0] for r in missing)
                ancestors = [n.rev for n in reversed(record.leaves()) if n.pos < highest]
                if ancestors:
                    entry["possible_ancestors"] = ancestors
            out[doc_id] = entry
        return out


def purge(db: Database, body: dict[str, Any]) -> dict[str, Any]:
    """``_purge``: drop leaf revisions (and the whole doc when nothing is left).

    A purge that removes something is an update: ``update_seq`` grows by one (03/purge
    [4]: 2 -> 3), so view indexes rebuild and longpoll feeds wake up.
    """
    with db.lock:
        purged: dict[str, list[str]] = {}
        for doc_id, revs in body.items():
            record = db.docs.get(doc_id)
            done: list[str] = []
            if record is not None:
                leaves = {n.rev for n in record.leaves()}
                for rev in revs:
                    if rev in leaves:
                        for node in list(record.ancestry(rev)):
                            children = [n for n in record.revs.values() if n.parent == node.rev]
                            if children:
                                break
                            del record.revs[node.rev]
                        done.append(rev)
                if not record.revs:
                    del db.docs[doc_id]
                    db.design_ids.pop(doc_id, None)
                db.purge_seq += 1
                db.touched(doc_id)
            purged[doc_id] = done
        if any(purged.values()):
            db.seq += 1
            db.changed.notify_all()
        return {"purge_seq": None, "purged": purged}
