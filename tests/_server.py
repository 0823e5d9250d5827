"""The CouchDB-compatible server of the integration tests: pinned pouchdb-server, or COUCHDB_URL.

``start_pouchdb`` runs ``tests/devserver/node_modules/.bin/pouchdb-server --in-memory`` on a
free loopback port in its own process group, with its config and log files in a temporary
directory (never in the repository), and waits until ``GET /`` answers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEVSERVER_DIR = Path(__file__).resolve().parent / "devserver"
POUCHDB_SERVER = DEVSERVER_DIR / "node_modules" / ".bin" / "pouchdb-server"
INSTALL_HINT = (
    "install Node.js 20 (with npm), then run `make devserver` in the repository root "
    "(it runs `npm ci` in tests/devserver); or set COUCHDB_URL to a CouchDB on loopback, "
    "e.g. COUCHDB_URL=http://admin:pw@127.0.0.1:5984"
)


class ServerSetupError(Exception):
    """The test server could not be found, started or accepted."""


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is ``localhost``, an address in 127.0.0.0/8, or ``::1``."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_loopback_url(url: str) -> None:
    """Refuse a server URL whose host is not loopback: test traffic stays on this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        msg = f"COUCHDB_URL must be an http(s) URL, got scheme {parts.scheme!r}"
        raise ServerSetupError(msg)
    if not is_loopback_host(parts.hostname):
        msg = (
            f"COUCHDB_URL points to {parts.hostname!r}, which is not a loopback address; the "
            "tests create and delete databases, so they only run against 127.0.0.0/8, "
            "localhost or ::1"
        )
        raise ServerSetupError(msg)


def server_kind_of(welcome: Any) -> str:
    """``"couchdb"`` or ``"pouchdb"``, from the server's answer to ``GET /``."""
    if isinstance(welcome, dict):
        if "express-pouchdb" in welcome:
            return "pouchdb"
        if "couchdb" in welcome:
            return "couchdb"
    msg = f"GET / did not answer like CouchDB or pouchdb-server: {welcome!r:.200}"
    raise ServerSetupError(msg)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_root(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(f"{url}/", timeout=timeout) as answer:
        return json.loads(answer.read())


@dataclass
class RunningServer:
    """A started pouchdb-server (or, with ``process`` None, a server someone else runs)."""

    url: str
    kind: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    _log_file: Any = field(default=None, repr=False)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote (stdout, stderr and its log file)."""
        if self.workdir is None:
            return ""
        texts = []
        for name in ("stdout.txt", "log.txt"):
            path = self.workdir / name
            if path.exists():
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts)

    def check_alive(self) -> None:
        """Raise ServerSetupError if the server process has exited."""
        if self.process is not None and self.process.poll() is not None:
            msg = (
                f"pouchdb-server exited with status {self.process.returncode}; "
                f"its last output:\n{self.log_tail()}"
            )
            raise ServerSetupError(msg)

    def stop(self) -> None:
        """Stop the whole process group and wait for it; idempotent."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_pouchdb(workdir: Path, *, startup_timeout: float = 60.0) -> RunningServer:
    """Start the pinned pouchdb-server in memory on a free loopback port.

    Raises:
        ServerSetupError: node or the installed devserver is missing, or the server did not
            come up; the message says what to install or run.
    """
    if shutil.which("node") is None:
        msg = f"Node.js (`node`) is not on PATH: {INSTALL_HINT}"
        raise ServerSetupError(msg)
    if not POUCHDB_SERVER.exists():
        msg = f"{POUCHDB_SERVER} is missing (tests/devserver/node_modules): {INSTALL_HINT}"
        raise ServerSetupError(msg)
    last_error: ServerSetupError | None = None
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        try:
            return _start_once(workdir, startup_timeout)
        except ServerSetupError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


def _start_once(workdir: Path, startup_timeout: float) -> RunningServer:
    port = free_port()
    command = [
        str(POUCHDB_SERVER),
        "--in-memory",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "-n",  # no log lines on stdout (the long form --no-stdout-logs is parsed as a negation)
        "--dir",
        str(workdir),  # even --in-memory creates this directory
        "--config",
        str(workdir / "config.json"),
    ]
    log_file = (workdir / "stdout.txt").open("ab")
    process = subprocess.Popen(
        command,
        cwd=workdir,  # log.txt is written to the working directory
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: stop() kills node and anything it forks
    )
    server = RunningServer(
        f"http://127.0.0.1:{port}", "pouchdb", process, workdir, _log_file=log_file
    )
    deadline = time.monotonic() + startup_timeout
    while True:
        try:
            server.check_alive()
        except ServerSetupError:
            server.stop()
            raise
        try:
            server.kind = server_kind_of(_get_root(server.url, timeout=2))
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                tail = server.log_tail()
                server.stop()
                msg = f"pouchdb-server did not answer within {startup_timeout:.0f}s:\n{tail}"
                raise ServerSetupError(msg) from None
            time.sleep(0.1)
        else:
            return server


def close_connections(client: Any) -> None:
    """Close the idle keep-alive connections of a python-couchdb client.

    python-couchdb's pool has no ``close``; an open socket left to the garbage collector is a
    ``ResourceWarning``, which this suite turns into an error in whichever test runs then.
    """
    pool = client.resource.session.connection_pool
    with pool.lock:
        idle = [conn for conns in pool.conns.values() for conn in conns]
        pool.conns.clear()
    for conn in idle:
        conn.close()
