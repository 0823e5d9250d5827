"""The ``couchmapper`` command: sync-design, check, export, import, serve.

Each command runs through click's CliRunner, against the memory engine (``memory://`` URLs,
the same process-wide engine the test reads back) and against the test server
(pouchdb-server, or CouchDB with COUCHDB_URL). The classes come from ``tests/cli_models.py``.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.cli import main
from couchmapper.memory.http.server import CouchServer, Credentials

MODELS = str(Path(__file__).resolve().parents[1] / "cli_models.py")


def run(*args: str) -> Result:
    """Run ``couchmapper ARGS`` in process."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def memory_url() -> str:
    """A fresh ``memory://`` database URL."""
    return f"memory://cli-{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "server"])
def url(request: pytest.FixtureRequest) -> str:
    """A database URL on the memory engine, then on the test server."""
    if request.param == "memory":
        return f"memory://cli-{uuid.uuid4().hex}"
    base: str = request.getfixturevalue("server_url")
    name: str = request.getfixturevalue("db_name")
    return f"{base}/{name}"


def _seed(url: str) -> Backend:
    db = cm.connect(url)
    db.bulk_docs(
        [
            {"_id": "b1", "type": "cli-book", "title": "Dune", "pages": 412},
            {"_id": "b2", "type": "cli-book", "title": "Emma", "pages": "many"},
            {"_id": "b3", "type": "cli-book", "title": "Ulysses", "tags": [{"label": "x"}, {}]},
            {"_id": "s1", "type": "cli-shelf", "room": "hall"},
            {"_id": "other", "type": "not-ours", "anything": True},
        ]
    )
    return db


def test_help_lists_every_command() -> None:
    """``couchmapper --help`` names serve, sync-design, check, export and import."""
    result = run("--help")
    assert result.exit_code == 0
    for name in ("serve", "sync-design", "check", "export", "import"):
        assert name in result.output


def test_every_listed_command_resolves_to_a_command_of_its_name() -> None:
    """Each COMMANDS entry (one line per command) imports a click command of that name."""
    import click

    from couchmapper.cli import COMMANDS

    context = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert command is not None and command.name == name


def test_sync_design_creates_then_finds_everything_in_place(url: str) -> None:
    """The first run creates the index and the view; the second changes nothing."""
    first = run("sync-design", MODELS, "--url", url)
    assert first.exit_code == 0, first.output
    assert "created  _design/cm-cli-book-idx/" in first.output
    assert "created  _design/cm-cli-book" in first.output
    db = cm.connect(url)
    assert "by_title" in db.get("_design/cm-cli-book")["views"]
    second = run("sync-design", MODELS, "--url", url)
    assert "exists  _design/cm-cli-book-idx/" in second.output
    assert "unchanged  _design/cm-cli-book" in second.output
    assert "0 changed" in second.output


def test_sync_design_dry_run_writes_nothing(memory_url: str) -> None:
    """--dry-run says what would be created and leaves the database as it was."""
    db = cm.connect(memory_url)
    result = run("sync-design", MODELS, "--url", memory_url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would create  _design/cm-cli-book" in result.output
    assert "2 would change" in result.output
    assert db.all_docs()["rows"] == []
    assert [i["ddoc"] for i in db.list_indexes()["indexes"]] == [None]  # only _all_docs


def test_check_reports_each_invalid_document_and_fails(url: str) -> None:
    """Every bad field is a line (id, path, expected type); the exit status is 1."""
    _seed(url)
    result = run("check", MODELS, "--url", url, "--page", "2")
    assert result.exit_code == 1
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    found = {(line[0], line[1], line[2]) for line in lines}
    assert ("b2", "pages", "expected int") in found
    assert ("b3", "tags[1].label", "expected str") in found
    assert {line[0] for line in lines} == {"b2", "b3"}
    assert "4 document(s) checked, 2 invalid" in result.stderr


def test_check_passes_on_valid_documents(memory_url: str) -> None:
    """A database whose documents all fit exits 0."""
    cm.connect(memory_url).put({"_id": "s1", "type": "cli-shelf", "room": "attic"})
    result = run("check", MODELS, "--url", memory_url)
    assert result.exit_code == 0, result.output
    assert "1 document(s) checked, 0 invalid" in result.stderr


def test_export_then_import_restores_documents_revisions_and_attachments(
    url: str, memory_url: str, tmp_path: Path
) -> None:
    """A restored database has the same documents, revisions and attachment bytes."""
    source = _seed(url)
    rev = source.get("s1")["_rev"]
    source.put_attachment("s1", "note.txt", b"hello \x00 bytes", "text/plain", rev=rev)
    dump = tmp_path / "dump.jsonl"
    exported = run("export", url, str(dump))
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert sorted(d["_id"] for d in lines) == ["b1", "b2", "b3", "other", "s1"]
    restored = run("import", str(dump), memory_url)
    assert restored.exit_code == 0, restored.output
    target = cm.connect(memory_url)
    for doc in lines:
        assert target.get(doc["_id"])["_rev"] == doc["_rev"]
    assert target.get_attachment("s1", "note.txt") == (b"hello \x00 bytes", "text/plain")
    again = run("import", str(dump), memory_url)
    assert "0 written, 5 already there" in again.stderr


def test_import_into_the_test_server(url: str, tmp_path: Path) -> None:
    """An export of a memory database imports into the server with the same revisions."""
    source_url = f"memory://cli-{uuid.uuid4().hex}"
    source = _seed(source_url)
    rev = source.get("b1")["_rev"]
    source.put_attachment("b1", "a.bin", b"\x01\x02", "application/octet-stream", rev=rev)
    dump = tmp_path / "dump.jsonl"
    assert run("export", source_url, str(dump)).exit_code == 0
    result = run("import", str(dump), url)
    assert result.exit_code == 0, result.output
    target = cm.connect(url)
    assert target.get("b1")["_rev"] == source.get("b1")["_rev"]
    assert target.get_attachment("b1", "a.bin")[0] == b"\x01\x02"


def test_export_resume_continues_after_the_last_complete_line(
    memory_url: str, tmp_path: Path
) -> None:
    """A cut last line is dropped and the export goes on from the line before it."""
    db = cm.connect(memory_url)
    db.bulk_docs([{"_id": f"d{i:03d}", "n": i} for i in range(30)])
    dump = tmp_path / "dump.jsonl"
    assert run("export", memory_url, str(dump), "--page", "7").exit_code == 0
    full = dump.read_text().splitlines()
    dump.write_text("\n".join(full[:12]) + "\n" + full[12][:10])  # interrupted mid-line
    result = run("export", memory_url, str(dump), "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed after 'd011', 18 document(s)" in result.stderr
    assert dump.read_text().splitlines() == full


def test_import_refuses_a_line_that_is_not_a_document(memory_url: str, tmp_path: Path) -> None:
    """A line that is not JSON names its number; nothing is hidden."""
    dump = tmp_path / "bad.jsonl"
    dump.write_text('{"_id": "a", "_rev": "1-abc"}\nnot json\n')
    result = run("import", str(dump), memory_url)
    assert result.exit_code == 1
    assert "line 2: not JSON" in result.output


@pytest.fixture
def served() -> Iterator[CouchServer]:
    """A serve instance with an admin, in a thread."""
    server = CouchServer(("127.0.0.1", 0), admin=Credentials("admin", "pa55word-x"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_credentials_never_printed(served: CouchServer, tmp_path: Path) -> None:
    """Neither a good run nor a failing one shows the URL's password."""
    port = served.server_address[1]
    good = f"http://admin:pa55word-x@127.0.0.1:{port}/books"
    results = [
        run("sync-design", MODELS, "--url", good),
        run("check", MODELS, "--url", good),
        run("export", good, str(tmp_path / "d.jsonl")),
        run("check", MODELS, "--url", f"http://admin:pa55word-x@127.0.0.1:{port}/missing"),
        run("check", MODELS, "--url", f"http://admin:wrong-pa55@127.0.0.1:{port}/books"),
    ]
    assert [r.exit_code for r in results] == [0, 0, 0, 1, 1]
    for result in results:
        assert "pa55" not in result.output
        assert "admin:***@127.0.0.1" in result.output


def test_serve_refuses_a_public_bind_without_admin() -> None:
    """``serve --host 0.0.0.0`` without ``--admin`` is a usage error (exit 2)."""
    result = run("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 2
    assert "without an admin" in result.output
    assert run("serve", "--admin", "nopassword").exit_code == 2


def _check_peak(url: str) -> int:
    """Peak memory (bytes traced) of one ``check`` run, 200 documents a page."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = run("check", MODELS, "--url", url, "--page", "200")
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    return peak


def test_check_memory_stays_flat_as_the_database_grows(server_url: str, db_name: str) -> None:
    """Four times the documents do not take (even) half again the memory: check streams."""
    url = f"{server_url}/{db_name}"
    db = cm.connect(url)

    def add(start: int, stop: int) -> None:
        for low in range(start, stop, 500):
            docs = [
                {"_id": f"b{i:06d}", "type": "cli-book", "title": "t" * 50, "pages": i}
                for i in range(low, min(stop, low + 500))
            ]
            db.bulk_docs(docs)

    # tracemalloc counts every thread's allocations: the least of two runs leaves out a
    # background thread of an earlier test that happened to allocate during one of them.
    add(0, 1000)
    small = min(_check_peak(url) for _ in range(2))
    add(1000, 4000)
    large = min(_check_peak(url) for _ in range(2))
    assert large < small * 1.5, (small, large)


def test_console_script_serves_until_interrupted(tmp_path: Path) -> None:
    """``python -m couchmapper.cli serve --port 0`` answers GET / and stops on Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "couchmapper.cli", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert match is not None, banner
        with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/", timeout=30) as answer:
            assert json.loads(answer.read())["couchdb"] == "Welcome"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_every_command_is_registered_on_the_group() -> None:
    """``couchmapper --help`` lists all six commands, and ``migrate`` runs through the group."""
    listed = run("--help")
    assert listed.exit_code == 0
    for name in ("serve", "sync-design", "check", "export", "import", "migrate"):
        assert re.search(rf"^\s+{name}\s", listed.output, re.MULTILINE), name
    helped = run("migrate", "--help")
    assert helped.exit_code == 0 and "--dry-run" in helped.output
