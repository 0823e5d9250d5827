"""Run every benchmark: ``python -m tests.benchmarks`` (``make bench``).

Each module prints its own table of times and ratios against peers measured in the same run,
and reports its comparisons with :func:`tests.benchmarks._report.ratio`; at the end the plots
and the table of ``docs/benchmarks.md`` are written from those rows (``docs/_generated/bench``).
``python -m tests.benchmarks bench_documents ...`` runs only the modules named (their figures
are redrawn; the others are kept from the last run's ``bench.json``);
``python -m tests.benchmarks --replot`` only redraws the plots and the page from the rows of
the last run.
"""

import importlib
import sys

from . import _report

MODULES = (
    "bench_documents",
    "bench_session",
    "bench_backends",
    "bench_chunks",
    "bench_contention",
    "bench_migrate",
    "bench_attachments",
    "bench_engine",
)

if sys.argv[1:] == ["--replot"]:
    written = _report.replot()
else:
    for name in sys.argv[1:] or MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        print(f"\n=== {name} ===", flush=True)
        module.main()
    # Some modules named: their figures are redrawn, the others kept from the last run.
    rows = _report.merged(_report.ROWS) if sys.argv[1:] else _report.ROWS
    written = [_report.save(rows), *_report.write_site(rows)]
for path in written:
    print(f"wrote {path.relative_to(_report.OUT.parents[2])}")
