"""The ``couchmapper`` command: serve, sync-design, check, export, import and migrate.

Each command is a ``@click.command`` in its own module of this package, named in
:data:`COMMANDS` (one line each) and imported only when it runs, so ``couchmapper serve``
does not load what ``check`` needs.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["COMMANDS", "main"]

# Command name -> "module:attribute" of its click command.
COMMANDS = {
    "serve": "couchmapper.cli.serve:serve",
    "sync-design": "couchmapper.cli.design:sync_design",
    "check": "couchmapper.cli.check:check",
    "export": "couchmapper.cli.transfer:export",
    "import": "couchmapper.cli.transfer:import_",
    "migrate": "couchmapper.cli.migrate:migrate_command",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported from :data:`COMMANDS` when first used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, in order."""
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called ``cmd_name``, imported on first use."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            msg = f"{target} is not a click command"
            raise TypeError(msg)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="couchmapper")
def main() -> None:
    """couchmapper: typed documents for Apache CouchDB, from the command line."""
