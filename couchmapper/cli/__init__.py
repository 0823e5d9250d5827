"""The ``couchmapper`` command's subcommands, one module each (the group is added at merge)."""
