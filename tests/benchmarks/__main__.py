"""Run every benchmark: ``python -m tests.benchmarks``."""

from .bench_documents import main

main()
