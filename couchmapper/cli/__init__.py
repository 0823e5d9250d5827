"""The ``couchmapper`` command: ``serve``, ``sync-design``, ``check``, ``export``, ``import``.

Each command lives in its own module and is added to :data:`main` below, one line each; a
new command is a ``@click.command`` in a module of this package and one more
``main.add_command`` line.
"""

from __future__ import annotations

import click

from couchmapper.cli.check import check
from couchmapper.cli.design import sync_design
from couchmapper.cli.serve import serve
from couchmapper.cli.transfer import export, import_

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="couchmapper")
def main() -> None:
    """couchmapper: typed documents for Apache CouchDB, from the command line."""


main.add_command(serve)
main.add_command(sync_design)
main.add_command(check)
main.add_command(export)
main.add_command(import_)
