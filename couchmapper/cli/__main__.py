"""``python -m couchmapper.cli``: the ``couchmapper`` command without its console script."""

from couchmapper.cli import main

main()
