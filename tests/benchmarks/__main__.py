"""Run every benchmark: ``python -m tests.benchmarks`` (``make bench``).

Each module prints its own table of times and ratios against peers measured in the same run.
"""

from . import (
    bench_backends,
    bench_chunks,
    bench_contention,
    bench_documents,
    bench_engine,
    bench_session,
)

for module in (
    bench_documents,
    bench_session,
    bench_backends,
    bench_chunks,
    bench_contention,
    bench_engine,
):
    print(f"\n=== {module.__name__.rsplit('.', 1)[-1]} ===", flush=True)
    module.main()
