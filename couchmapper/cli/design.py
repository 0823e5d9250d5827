"""``couchmapper sync-design MODULE --url URL [--dry-run]``."""

from __future__ import annotations

import click

from couchmapper.cli.common import document_classes, open_database, reported, shown
from couchmapper.design import sync_design as sync

__all__ = ["sync_design"]

_WORDS = {
    False: {
        "created": "created",
        "updated": "updated",
        "exists": "exists",
        "unchanged": "unchanged",
    },
    True: {
        "created": "would create",
        "updated": "would update",
        "exists": "exists",
        "unchanged": "unchanged",
    },
}


@click.command("sync-design")
@click.argument("module")
@click.option("--url", required=True, help="The database: http(s)://[user:pass@]host:port/db.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
def sync_design(module: str, url: str, dry_run: bool) -> None:
    """Create or update the indexes and views declared by MODULE's classes.

    MODULE is a dotted module name (importable from the current directory) or a .py file.
    Prints one line per index and design document: created, updated, exists or unchanged.
    """
    classes = document_classes(module)
    backend = open_database(url, create=not dry_run)
    with reported(url):
        outcome = sync(backend, *classes, dry_run=dry_run)
    words = _WORDS[dry_run]
    for name, result in sorted(outcome.items()):
        click.echo(f"{words.get(result, result):>12}  {name}")
    changed = sum(1 for r in outcome.values() if r in ("created", "updated"))
    verb = "would change" if dry_run else "changed"
    names = ", ".join(c.__name__ for c in classes)
    click.echo(f"{shown(url)}: {len(outcome)} design item(s) of {names}; {changed} {verb}")
