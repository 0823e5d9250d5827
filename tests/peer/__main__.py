"""``python -m tests.peer``: python-couchdb 1.2's tests on ``couchmapper serve`` and CouchDB 3.5.

The suite comes from the CouchDB 1.2 sdist (``pip download``, cached under
``build/peer-suite/``). Each server is started on a free loopback port with the admin
``admin:admin``: ``couchmapper serve`` from this checkout, Apache CouchDB from the run script
that ``COUCHDB_RUN`` names (``run --port P --dir D --admin user:pass``). The suite runs once
against each; the table (test, CouchDB, serve) goes to stdout and
``build/peer-suite/results.md``. Exit status 1 when a test that passes on CouchDB fails on
serve, unless it is one of :data:`NOT_IMPLEMENTED` (show/list/update functions, replication).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "peer-suite"
SDIST = "CouchDB==1.2"
ADMIN = "admin:admin"

# Tests that need what serve does not do (it answers 501 not_implemented): show, list and
# update functions, and replication.
NOT_IMPLEMENTED = (
    "couchdb.tests.client.ShowListTestCase.",
    "couchdb.tests.client.UpdateHandlerTestCase.",
    "couchdb.tests.client.ServerTestCase.test_replicate",
    "couchdb.tests.couch_tests.CouchTests.test_update_with_unsafe_doc_ids",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fetch_suite() -> Path:
    """The unpacked sdist (downloaded once with pip, then reused)."""
    unpacked = BUILD / "CouchDB-1.2"
    if (unpacked / "couchdb" / "tests" / "__main__.py").exists():
        return unpacked
    BUILD.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", SDIST, "--no-binary", ":all:"]
    subprocess.run([*pip, "--no-deps", "-q", "-d", str(BUILD)], check=True)
    with tarfile.open(BUILD / "CouchDB-1.2.tar.gz") as archive:
        archive.extractall(BUILD, filter="data")
    return unpacked


def _wait_up(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(240):
        if process.poll() is not None:
            msg = f"the server exited: {log.read_text(errors='replace')[-2000:]}"
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_up", timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    msg = f"the server on port {port} did not come up"
    raise RuntimeError(msg)


@contextmanager
def running(command: list[str], port: int, log: Path) -> Iterator[str]:
    """Start a server, wait for ``/_up``, yield its URL with the admin, stop it."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_up(port, process, log)
        yield f"http://{ADMIN}@127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_suite(suite: Path, url: str, name: str) -> dict[str, dict[str, str]]:
    """Run the suite against ``url``; the outcome of each test id."""
    out = BUILD / f"{name}.json"
    env = {**os.environ, "COUCHDB_URL": url, "PYTHONPATH": str(suite)}
    runner = Path(__file__).with_name("_runner.py")
    subprocess.run([sys.executable, str(runner), str(out)], env=env, check=True, timeout=1800)
    found: dict[str, dict[str, str]] = json.loads(out.read_text())
    return found


def table(couch: dict[str, dict[str, str]], serve: dict[str, dict[str, str]]) -> list[str]:
    """The Markdown table: one row per test, its outcome on each server."""
    lines = ["| test | CouchDB 3.5 | serve |", "|---|---|---|"]
    for test in sorted(set(couch) | set(serve)):
        left = couch.get(test, {}).get("outcome", "-")
        right = serve.get(test, {}).get("outcome", "-")
        note = ""
        if left == "pass" and right != "pass":
            note = " (not implemented)" if test.startswith(NOT_IMPLEMENTED) else " **REGRESSION**"
            note += f": {serve.get(test, {}).get('message', '')[:120]}"
        lines.append(f"| {test.removeprefix('couchdb.tests.')} | {left} | {right}{note} |")
    return lines


def main() -> int:
    """Run both, print and write the table; 1 when serve fails a test CouchDB passes."""
    couch_run = os.environ.get("COUCHDB_RUN")
    if not couch_run:
        print(
            "set COUCHDB_RUN to the CouchDB 3.5 run script (run --port P --dir D)", file=sys.stderr
        )
        return 2
    suite = fetch_suite()
    port = _free_port()
    serve_cmd = [sys.executable, "-m", "couchmapper.cli", "serve", "--port", str(port)]
    with running([*serve_cmd, "--admin", ADMIN], port, BUILD / "serve.log") as url:
        serve = run_suite(suite, url, "serve")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="peer-couchdb-") as folder:
        couch_cmd = ["bash", couch_run, "--port", str(port), "--dir", folder, "--admin", ADMIN]
        with running(couch_cmd, port, BUILD / "couchdb.log") as url:
            couch = run_suite(suite, url, "couchdb")
    lines = table(couch, serve)
    (BUILD / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    both = [t for t in couch if couch[t]["outcome"] == "pass"]
    missing = [t for t in both if serve.get(t, {}).get("outcome") != "pass"]
    excused = [t for t in missing if t.startswith(NOT_IMPLEMENTED)]
    regressions = [t for t in missing if t not in excused]
    passed = sum(1 for t in serve.values() if t["outcome"] == "pass")
    print(
        f"\nCouchDB 3.5 passes {len(both)} of {len(couch)}; serve passes {passed} of {len(serve)}; "
        f"{len(excused)} need show/list/update functions or replication; "
        f"{len(regressions)} pass on CouchDB only"
    )
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
