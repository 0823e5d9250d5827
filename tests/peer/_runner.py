"""Run python-couchdb's own test suite once and write each test's outcome as JSON.

Usage: ``python -m tests.peer._runner OUT.json`` with ``PYTHONPATH`` naming the unpacked sdist
(so ``couchdb.tests`` is the sdist's) and ``COUCHDB_URL`` the server under test. Outcomes are
``pass``, ``fail``, ``error`` or ``skip``, each with the first line of its message.
"""

from __future__ import annotations

import json
import sys
import unittest
import warnings
from typing import Any


class _Recorder(unittest.TestResult):
    """A result that keeps one outcome per test id."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, dict[str, str]] = {}

    def _put(self, test: unittest.TestCase, outcome: str, detail: str = "") -> None:
        lines = [line for line in detail.strip().splitlines() if line.strip()]
        self.outcomes[test.id()] = {"outcome": outcome, "message": lines[-1] if lines else ""}

    def addSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802 (unittest's name)
        """Record a pass."""
        self._put(test, "pass")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        """Record a failure."""
        super().addFailure(test, err)
        self._put(test, "fail", self.failures[-1][1])

    def addError(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        """Record an error."""
        super().addError(test, err)
        self._put(test, "error", self.errors[-1][1])

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:  # noqa: N802
        """Record a skip."""
        self._put(test, "skip", reason)


def main(out: str) -> int:
    """Run the suite, write the outcomes to ``out``; 0 whatever the outcomes."""
    warnings.simplefilter("ignore")
    from couchdb.tests.__main__ import suite  # the sdist's, through PYTHONPATH

    result = _Recorder()
    suite().run(result)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result.outcomes, handle, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
