"""``couchmapper migrate MODULE --url URL``: upgrade stored documents to their classes' versions.

MODULE is a dotted module name (importable from the current directory) or a path to a
``.py`` file; every document class in it with ``class Meta: version = N`` is migrated by
:func:`couchmapper.migrate.migrate`, with a progress bar (rich) on stderr and a summary on
stdout. The exit status is 0 when no document failed, 1 otherwise.
"""

from __future__ import annotations

import sys

import click

from couchmapper.cli.common import load_module, progress, shown
from couchmapper.exceptions import CouchMapperError
from couchmapper.migrate import migrate, versioned_classes

__all__ = ["migrate_command"]


@click.command("migrate")
@click.argument("module")
@click.option(
    "--url",
    required=True,
    envvar="COUCHMAPPER_URL",
    help="The database: http(s)://[user:password@]host:port/dbname (or $COUCHMAPPER_URL).",
)
@click.option(
    "--batch",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Documents per request and per flush.",
)
@click.option("--dry-run", is_flag=True, help="Upgrade and validate in memory; write nothing.")
def migrate_command(module: str, url: str, batch: int, dry_run: bool) -> None:
    """Upgrade every stored document of MODULE's versioned classes (resumable, idempotent)."""
    classes = versioned_classes(vars(load_module(module)).values())
    if not classes:
        msg = f"{module} has no document class with `class Meta: version = N`"
        raise click.UsageError(msg)
    names = ", ".join(cls.__name__ for cls in classes)
    click.echo(f"migrating {names} in {shown(url)}" + (" (dry run)" if dry_run else ""))
    with progress(None, "documents") as bar:
        task = bar.add_task("documents", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = migrate(url, classes, batch=batch, dry_run=dry_run, progress=advance)
        except (CouchMapperError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    if report.failed:
        sys.exit(1)
