"""An audit log written by a hook, in the same flush (and the same request) as the edits.

Every change to an ``Account`` adds an ``AuditEntry`` naming the fields, their old and new
values. The entries are added by a ``document_changed`` / ``document_added`` receiver through
the session it is given, so they go to CouchDB in the one ``_bulk_docs`` request of the flush:
either the edit and its audit entry are sent together, or neither is.

Run: ``python examples/audit_log.py`` (embedded in-memory database).
"""

from __future__ import annotations

from typing import Any

import couchmapper as cm
from couchmapper import signals


class Account(cm.Document, type_name="example-account"):
    """A customer account."""

    owner: str
    balance: int = 0


class AuditEntry(cm.Document, type_name="example-audit"):
    """One audited change of one document."""

    doc_id: str
    action: str
    changes: list[dict[str, Any]] = cm.field(factory=list)


def audit(sender: type, *, session: cm.Session, document: Any, changes: cm.ChangeList) -> None:
    """Add an AuditEntry for every added or changed Account."""
    action = "added" if not changes else "changed"
    session.add(
        AuditEntry(
            doc_id=document.id,
            action=action,
            changes=[
                {"path": c.pointer, "old": c.old, "new": c.value}
                for c in changes
                if c.old is not cm.MISSING and c.value is not cm.MISSING
            ],
        )
    )


def report(sender: cm.Session, *, results: list[cm.WriteResult]) -> None:
    """Show what each flush wrote (all in the one request of that flush)."""
    print("flush wrote:", sorted(type_of(sender, r.doc_id) for r in results))


def type_of(session: cm.Session, doc_id: str) -> str:
    """The class name of a document held by ``session``."""
    return type(session.get(doc_id)).__name__


def main() -> None:
    """Edit accounts in two sessions, then show the audit log written with them."""
    db = cm.connect()
    signals.document_added.connect(audit, sender=Account)
    signals.document_changed.connect(audit, sender=Account)
    signals.after_flush.connect(report)
    try:
        with cm.Session(db) as s:
            s.add(Account(owner="Ann", balance=100, id="acct-ann"))
        with cm.Session(db) as s:
            ann = s.get(Account, "acct-ann")
            assert ann is not None
            ann.balance -= 30
            ann.owner = "Ann Smith"
        with cm.Session(db) as s:
            entries = s.find(AuditEntry, AuditEntry.doc_id == "acct-ann")
            for entry in sorted(entries, key=lambda e: e.action):
                print(entry.action, entry.changes)
    finally:
        signals.document_added.disconnect(audit, sender=Account)
        signals.document_changed.disconnect(audit, sender=Account)
        signals.after_flush.disconnect(report)


if __name__ == "__main__":
    main()
