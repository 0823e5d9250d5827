"""A local 3-node CouchDB cluster for the cluster suite, driven through a start/restart/stop script.

The script (its path in ``COUCHDB_CLUSTER``) has the interface::

    cluster start DIR [--nodes 3] [--base-port N] [--admin admin:admin]   # prints node URLs
    cluster restart DIR i                                                # node i again
    cluster stop DIR

Node ``i`` (1-based) listens on ``base + i - 1`` of 127.0.0.1 and its pid is in
``DIR/node<i>.pid``. :class:`Cluster` starts it on free ports, kills and restarts nodes, and
makes raw requests to one node (with the admin credentials, never shown in messages).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

NODES = 3
ADMIN = ("admin", "admin")
REPO_ROOT = Path(__file__).resolve().parents[2]
HOW_TO_RUN = (
    "the cluster suite needs COUCHDB_CLUSTER, the path of a script with the interface "
    "`cluster start|restart|stop DIR` that runs a local 3-node Apache CouchDB 3.x cluster "
    "(see docs/backends.md, Clusters); run it as "
    "`make test-cluster COUCHDB_CLUSTER=/path/to/cluster`"
)


class ClusterError(Exception):
    """The cluster could not be started, or a node did not stop or come back in time."""


def script_from_env() -> Path:
    """The cluster script named by ``COUCHDB_CLUSTER`` (relative paths: to the repository)."""
    value = os.environ.get("COUCHDB_CLUSTER", "").strip()
    if not value:
        raise ClusterError(HOW_TO_RUN)
    path = Path(value)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file() or not os.access(path, os.X_OK):
        msg = f"COUCHDB_CLUSTER={value!r} is not an executable file ({path}); {HOW_TO_RUN}"
        raise ClusterError(msg)
    return path


def _port_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int = NODES, *, low: int = 20000, high: int = 30000) -> int:
    """A port ``base`` such that ``base .. base + count - 1`` are all free on 127.0.0.1.

    The Erlang distribution ports need no choosing: each node takes an ephemeral port and
    registers it with the machine's epmd (see :func:`registered_nodes`).
    """
    rng = random.Random()
    for _attempt in range(200):
        base = rng.randrange(low, high - count)
        if all(_port_free(base + k) for k in range(count)):
            return base
    msg = f"no {count} consecutive free ports found between {low} and {high}"
    raise ClusterError(msg)


def registered_nodes() -> set[str]:
    """The Erlang node names epmd (port 4369 of 127.0.0.1) knows; empty when epmd is not up."""
    try:
        with socket.create_connection(("127.0.0.1", 4369), timeout=2) as sock:
            sock.sendall(b"\x00\x01n")  # NAMES_REQ
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    except OSError:
        return set()
    text = b"".join(chunks)[4:].decode("latin-1")
    return {line.split()[1] for line in text.splitlines() if line.startswith("name ")}


@dataclass
class Answer:
    """A node's answer to one raw request."""

    status: int
    body: Any


@dataclass
class Cluster:
    """A running local cluster: node URLs, kill and restart by node number (1-based)."""

    script: Path
    workdir: Path
    base: int
    ports: list[int]
    down: set[int] = field(default_factory=set)
    _auth: str = field(default="", repr=False)

    @classmethod
    def start(cls, script: Path, workdir: Path, *, timeout: float = 180.0) -> Cluster:
        """Start the nodes on free loopback ports and wait until they form one cluster."""
        _wait_names_free(timeout=120.0)
        base = free_base_port()
        done = _run(script, ["start", str(workdir), "--base-port", str(base)], timeout)
        urls = [line.strip() for line in done.stdout.splitlines() if line.startswith("http")]
        ports = [urlsplit(url).port for url in urls]
        if len(urls) != NODES or any(urlsplit(u).hostname != "127.0.0.1" for u in urls):
            msg = f"cluster start printed {urls!r}: expected {NODES} URLs on 127.0.0.1"
            raise ClusterError(msg)
        cluster = cls(script, workdir, base, [p for p in ports if p is not None])
        cluster._auth = "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()
        for node in cluster.nodes:
            cluster.wait_up(node)
        return cluster

    @property
    def nodes(self) -> range:
        """The node numbers, 1-based."""
        return range(1, len(self.ports) + 1)

    def url(self, node: int, db: str | None = None) -> str:
        """``http://admin:admin@127.0.0.1:<port>[/db]`` of ``node`` (credentials included)."""
        user, password = ADMIN
        root = f"http://{quote(user)}:{quote(password)}@127.0.0.1:{self.ports[node - 1]}"
        return root if db is None else f"{root}/{quote(db, safe='')}"

    def pid(self, node: int) -> int:
        """The pid in ``DIR/node<i>.pid``."""
        return int((self.workdir / f"node{node}.pid").read_text().strip())

    def log_tail(self, node: int, lines: int = 8) -> str:
        """The last lines of ``DIR/node<i>.log``."""
        path = self.workdir / f"node{node}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- raw requests ------------------------------------------------------------------------

    def request(
        self,
        node: int,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float = 30.0,
        **params: Any,
    ) -> Answer:
        """One request to ``node`` (``path`` like ``/db/doc``); JSON params are encoded."""
        query = {
            k: json.dumps(v) if not isinstance(v, str) or k in ("key", "startkey") else v
            for k, v in params.items()
        }
        url = f"http://127.0.0.1:{self.ports[node - 1]}{path}"
        if query:
            url += "?" + urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return Answer(answer.status, json.loads(answer.read() or b"null"))
        except urllib.error.HTTPError as error:
            return Answer(error.code, json.loads(error.read() or b"null"))

    def get(self, node: int, path: str, **params: Any) -> Any:
        """GET ``path`` on ``node``; the JSON body, or an AssertionError naming the status."""
        answer = self.request(node, "GET", path, **params)
        assert answer.status == 200, f"GET {path} on node {node}: {answer.status} {answer.body}"
        return answer.body

    def answers(self, node: int) -> bool:
        """Whether ``GET /_up`` on ``node`` answers ``"status": "ok"`` now."""
        try:
            answer = self.request(node, "GET", "/_up", timeout=2)
        except (OSError, ValueError):
            return False
        body = answer.body if isinstance(answer.body, dict) else {}
        return answer.status == 200 and body.get("status") == "ok"  # a cluster adds "seeds"

    # -- failures ----------------------------------------------------------------------------

    def kill(self, node: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop ``node`` by its pid (SIGKILL: a crash) and wait until it no longer answers."""
        pid = self.pid(node)
        self.down.add(node)
        with contextlib.suppress(ProcessLookupError):
            try:
                os.killpg(pid, sig)  # the script starts each node in its own session
            except PermissionError:
                os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while _alive(pid) or self.answers(node):
            if time.monotonic() > deadline:
                msg = f"node {node} (pid {pid}) still runs 30 s after signal {sig.name}"
                raise ClusterError(msg)
            time.sleep(0.05)

    def restart(self, node: int, *, timeout: float = 120.0) -> None:
        """Start ``node`` again (``cluster restart DIR i``) and wait for its ``/_up``."""
        _run(self.script, ["restart", str(self.workdir), str(node)], timeout)
        self.wait_up(node)
        self.down.discard(node)

    def restore(self) -> None:
        """Restart every node a test killed."""
        for node in sorted(self.down):
            self.restart(node)

    def wait_up(self, node: int, timeout: float = 60.0) -> None:
        """Wait until ``node`` answers ``/_up``."""
        deadline = time.monotonic() + timeout
        while not self.answers(node):
            if time.monotonic() > deadline:
                msg = f"node {node} did not answer /_up in {timeout:.0f} s:\n{self.log_tail(node)}"
                raise ClusterError(msg)
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node (``cluster stop DIR``), SIGKILL what is left after 30 s."""
        pids = [self.pid(n) for n in self.nodes if (self.workdir / f"node{n}.pid").exists()]
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
            _run(self.script, ["stop", str(self.workdir)], 60)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped yet, counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _run(script: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``script args``; ClusterError (with its stderr) if it fails or takes too long."""
    try:
        done = subprocess.run(
            [str(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        msg = f"`cluster {args[0]}` did not finish in {timeout:.0f} s"
        raise ClusterError(msg) from exc
    if done.returncode != 0:
        msg = f"`cluster {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}"
        raise ClusterError(msg)
    return done


def _wait_names_free(timeout: float) -> None:
    """Wait until no node1..node3 is registered with epmd (another cluster on this machine)."""
    wanted = {f"node{n}" for n in range(1, NODES + 1)}
    deadline = time.monotonic() + timeout
    while taken := wanted & registered_nodes():
        if time.monotonic() > deadline:
            msg = (
                f"Erlang node names {sorted(taken)} are taken on this machine (another local "
                f"cluster runs; `epmd -names` lists them): stop it first"
            )
            raise ClusterError(msg)
        time.sleep(1)
