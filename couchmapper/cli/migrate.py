"""``couchmapper migrate MODULE --url URL``: upgrade stored documents to their classes' versions.

MODULE is a dotted module name (importable from the current directory) or a path to a
``.py`` file; every document class in it with ``class Meta: version = N`` is migrated by
:func:`couchmapper.migrate.migrate`, with a progress bar (rich) on stderr and a summary on
stdout. The exit status is 0 when no document failed, 1 otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from couchmapper._url import redact_url
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
    classes = versioned_classes(vars(_import(module)).values())
    if not classes:
        msg = f"{module} has no document class with `class Meta: version = N`"
        raise click.UsageError(msg)
    names = ", ".join(cls.__name__ for cls in classes)
    click.echo(f"migrating {names} in {redact_url(url)}" + (" (dry run)" if dry_run else ""))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(file=sys.stderr)) as bar:
        task = bar.add_task("documents", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = migrate(url, classes, batch=batch, dry_run=dry_run, progress=progress)
        except (CouchMapperError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    if report.failed:
        sys.exit(1)


def _import(module: str) -> ModuleType:
    """The module named ``module`` (dotted, from the current directory) or at a file path.

    Raises:
        click.BadParameter: it cannot be found.
    """
    if module.endswith(".py") or "/" in module:
        path = Path(module)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None or not path.is_file():
            msg = f"no Python file at {module}"
            raise click.BadParameter(msg, param_hint="MODULE")
        found = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = found
        spec.loader.exec_module(found)
        return found
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` finds the user's modules
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        msg = f"cannot import {module}: {exc}"
        raise click.BadParameter(msg, param_hint="MODULE") from None
