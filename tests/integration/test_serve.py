"""``couchmapper serve``: the memory engine over real HTTP, spoken to as any client would.

Each test starts a :class:`CouchServer` on a free loopback port in a thread and talks to it
with the standard library's HTTP client. The compaction and ``since`` cases also run on the
test server (pouchdb-server, or CouchDB with COUCHDB_URL), which shows the same answers.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import couchmapper as cm
from couchmapper.memory.http.server import CouchServer, Credentials, check_bind

ADMIN = Credentials("admin", "s3cret")


class Client:
    """A tiny HTTP client for one server, with optional basic auth."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5984
        if parts.username and auth is None:
            auth = (parts.username, parts.password or "")
        self.auth = auth

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """Send one request; the status, headers (lower-case) and JSON (or raw) body."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = dict(headers or {})
        if self.auth is not None and "authorization" not in {k.lower() for k in sent}:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=sent)
            answer = conn.getresponse()
            raw = answer.read()
            found = {k.lower(): v for k, v in answer.getheaders()}
        finally:
            conn.close()
        try:
            return answer.status, found, json.loads(raw) if raw else None
        except ValueError:
            return answer.status, found, raw


@pytest.fixture
def served() -> Iterator[CouchServer]:
    """A serve instance with an admin, on a free loopback port, stopped after the test."""
    server = CouchServer(("127.0.0.1", 0), admin=ADMIN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def admin(served: CouchServer) -> Client:
    """A client that authenticates as the admin."""
    return Client(served.url, (ADMIN.name, ADMIN.password))


def test_root_up_and_uuids_answer_without_credentials(served: CouchServer) -> None:
    """``/``, ``/_up`` and ``/_uuids`` are public, as on CouchDB 3."""
    anonymous = Client(served.url)
    status, _, body = anonymous.request("GET", "/")
    assert (status, body["couchdb"], body["version"]) == (200, "Welcome", "3.5.0")
    assert anonymous.request("GET", "/_up")[2] == {"status": "ok", "seeds": {}}
    status, _, body = anonymous.request("GET", "/_uuids?count=3")
    assert status == 200 and len(set(body["uuids"])) == 3


def test_anonymous_and_wrong_password_are_refused(served: CouchServer) -> None:
    """Without the admin: 401 for server endpoints and databases; a wrong password too."""
    anonymous = Client(served.url)
    assert anonymous.request("GET", "/_all_dbs")[2] == {
        "error": "unauthorized",
        "reason": "You are not a server admin.",
    }
    status, _, body = anonymous.request("PUT", "/db1")
    assert (status, body["error"]) == (401, "unauthorized")
    wrong = Client(served.url, ("admin", "nope"))
    assert wrong.request("GET", "/_all_dbs")[2]["reason"] == "Name or password is incorrect."


def test_basic_auth_admin_creates_and_reads(admin: Client) -> None:
    """The admin creates a database and a document; Location names this server."""
    status, headers, _ = admin.request("PUT", "/db1")
    assert status == 201
    assert headers["location"] == f"http://{admin.host}:{admin.port}/db1"
    status, _, body = admin.request("PUT", "/db1/a", {"v": 1})
    assert status == 201 and body["rev"].startswith("1-")
    assert admin.request("GET", "/db1/a")[2]["v"] == 1
    assert "db1" in admin.request("GET", "/_all_dbs")[2]


def test_cookie_session_login_use_and_logout(served: CouchServer) -> None:
    """POST /_session gives a cookie that authenticates; GET /_session names its user."""
    anonymous = Client(served.url)
    status, _, body = anonymous.request(
        "POST",
        "/_session",
        b"name=admin&password=s3cret",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body) == (200, {"ok": True, "name": "admin", "roles": ["_admin"]})
    refused = anonymous.request("POST", "/_session", {"name": "admin", "password": "x"})
    assert refused[0] == 401
    _, headers, _ = anonymous.request("POST", "/_session", {"name": "admin", "password": "s3cret"})
    cookie = headers["set-cookie"].split(";")[0]
    status, _, body = anonymous.request("GET", "/_session", headers={"Cookie": cookie})
    assert body["userCtx"] == {"name": "admin", "roles": ["_admin"]}
    assert body["info"]["authenticated"] == "cookie"
    assert anonymous.request("PUT", "/viacookie", headers={"Cookie": cookie})[0] == 201
    status, headers, _ = anonymous.request("DELETE", "/_session", headers={"Cookie": cookie})
    assert status == 200 and headers["set-cookie"].startswith("AuthSession=;")
    assert anonymous.request("GET", "/_session")[2]["userCtx"] == {"name": None, "roles": []}


def test_users_in_users_db_log_in_and_passwords_are_not_stored(admin: Client) -> None:
    """A ``_users`` user logs in; the stored doc has a derived key, never the password."""
    user = {"name": "ann", "password": "pw1", "roles": ["reader"], "type": "user"}
    assert admin.request("PUT", "/_users/org.couchdb.user:ann", user)[0] == 201
    stored = admin.request("GET", "/_users/org.couchdb.user:ann")[2]
    assert "password" not in stored and stored["password_scheme"] == "pbkdf2"
    ann = Client(f"http://{admin.host}:{admin.port}", ("ann", "pw1"))
    body = ann.request("GET", "/_session")[2]
    assert body["userCtx"] == {"name": "ann", "roles": ["reader"]}
    assert ann.request("GET", "/_all_dbs")[0] == 401


def test_not_implemented_is_a_clear_501(admin: Client) -> None:
    """Show/list/update functions, _replicate and _config answer 501, never a 404."""
    admin.request("PUT", "/db1")
    admin.request("PUT", "/db1/_design/d", {"shows": {"s": "function(doc, req) {}"}})
    for path in (
        "/db1/_design/d/_show/s",
        "/db1/_design/d/_list/l/v",
        "/db1/_design/d/_update/u",
        "/_replicate",
        "/_config",
        "/_node/_local/_config",
        "/_node/_local/_stats",
        "/_db_updates",
        "/db1/_design/d/_search/s",
    ):
        status, _, body = admin.request("POST" if "_update" in path else "GET", path)
        assert (status, body["error"]) == (501, "not_implemented"), path
    assert admin.request("GET", "/_membership")[2]["all_nodes"] == ["couchmapper@127.0.0.1"]
    # An unknown name is still a database name, as on CouchDB (01/db-name-leading-underscore).
    assert admin.request("GET", "/_nosuch")[2] == {
        "error": "not_found",
        "reason": "Database does not exist.",
    }


def test_refuses_a_public_bind_without_admin() -> None:
    """An admin party stays on loopback: 0.0.0.0 without an admin is refused."""
    with pytest.raises(ValueError, match="without an admin"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", ADMIN)
    check_bind("127.0.0.1", None)


def _read_chunk(answer: http.client.HTTPResponse) -> bytes:
    """One HTTP/1.1 chunk of a streamed answer."""
    size = int(answer.fp.readline().strip(), 16)
    data = answer.fp.read(size)
    answer.fp.readline()
    return data


def test_continuous_changes_stream_rows_as_they_happen_with_heartbeats(
    served: CouchServer, admin: Client
) -> None:
    """A continuous feed sends each change when it happens and newlines when quiet."""
    admin.request("PUT", "/feed")
    admin.request("PUT", "/feed/a", {"v": 1})
    conn = http.client.HTTPConnection(admin.host, admin.port, timeout=30)
    token = base64.b64encode(b"admin:s3cret").decode()
    conn.request(
        "GET",
        "/feed/_changes?feed=continuous&heartbeat=50",
        headers={"Authorization": f"Basic {token}"},
    )
    answer = conn.getresponse()
    assert answer.getheader("transfer-encoding") == "chunked"
    first = json.loads(_read_chunk(answer))
    assert first["id"] == "a"
    assert _read_chunk(answer) == b"\n"  # a heartbeat: nothing happened for 50 ms
    admin.request("PUT", "/feed/b", {"v": 2})
    chunk = _read_chunk(answer)
    while chunk == b"\n":
        chunk = _read_chunk(answer)
    assert json.loads(chunk)["id"] == "b"
    conn.close()


def test_continuous_feed_with_timeout_ends_with_last_seq(admin: Client) -> None:
    """Without a heartbeat the feed ends after ``timeout`` with its last_seq line."""
    admin.request("PUT", "/feed")
    admin.request("PUT", "/feed/a", {"v": 1})
    status, _, raw = admin.request("GET", "/feed/_changes?feed=continuous&timeout=10")
    lines = [json.loads(line) for line in raw.decode().splitlines() if line]
    assert status == 200 and lines[0]["id"] == "a" and "last_seq" in lines[-1]


def test_session_of_couchmapper_flushes_through_serve(admin: Client) -> None:
    """couchmapper's own CouchDB backend works against serve like against CouchDB."""
    url = f"http://admin:s3cret@{admin.host}:{admin.port}"
    admin.request("PUT", "/orm")
    db = cm.connect(f"{url}/orm")
    with cm.Session(db) as session:
        session.create({"_id": "x", "n": 1})
    assert db.get("x")["n"] == 1
    assert admin.request("GET", "/orm/x")[2]["n"] == 1


def _servers(request: pytest.FixtureRequest, served: CouchServer) -> Client:
    if request.param == "serve":
        client = Client(served.url, (ADMIN.name, ADMIN.password))
        client.kind = "couchdb"  # type: ignore[attr-defined]  # serve answers as CouchDB
        return client
    url: str = request.getfixturevalue("server_url")
    client = Client(url)
    client.kind = request.getfixturevalue("server_kind")  # type: ignore[attr-defined]
    return client


@pytest.fixture(params=["serve", "test-server"])
def any_server(request: pytest.FixtureRequest, served: CouchServer) -> Iterator[Client]:
    """serve, and the integration test server (pouchdb-server or COUCHDB_URL's CouchDB)."""
    client = _servers(request, served)
    name = f"cm-serve-{time.monotonic_ns()}"
    client.request("PUT", f"/{name}")
    client.db = name  # type: ignore[attr-defined]
    yield client
    client.request("DELETE", f"/{name}")


def test_compaction_drops_old_revision_bodies(any_server: Client) -> None:
    """After _compact, GET ?rev=<non-leaf> is 404 missing; the leaf stays readable."""
    db = any_server.db  # type: ignore[attr-defined]
    first = any_server.request("PUT", f"/{db}/a", {"v": 1})[2]["rev"]
    second = any_server.request("PUT", f"/{db}/a", {"v": 2, "_rev": first})[2]["rev"]
    assert any_server.request("GET", f"/{db}/a?rev={first}")[0] == 200
    assert any_server.request("POST", f"/{db}/_compact", {})[0] == 202
    deadline = time.monotonic() + 30
    while any_server.request("GET", f"/{db}/a?rev={first}")[0] == 200:
        assert time.monotonic() < deadline, "compaction did not finish"
        time.sleep(0.2)
    status, _, body = any_server.request("GET", f"/{db}/a?rev={first}")
    assert (status, body) == (404, {"error": "not_found", "reason": "missing"})
    assert any_server.request("GET", f"/{db}/a?rev={second}")[2]["v"] == 2


@pytest.mark.parametrize("since", ["abc", "-1", "1-", "x-1", "1", "00", "0-g1AAAA"])
def test_malformed_since_is_refused_as_couchdb_does(any_server: Client, since: str) -> None:
    """A malformed ``since`` is CouchDB's 400 (05/changes-bad-params; 1, 00 as on 3.5)."""
    db = any_server.db  # type: ignore[attr-defined]
    status, _, body = any_server.request("GET", f"/{db}/_changes?since={since}")
    if any_server.kind == "pouchdb":  # type: ignore[attr-defined]
        # Documented deviation: pouchdb-server reads any since as 0 (05/changes-bad-params).
        assert status == 200
        return
    assert (status, body) == (
        400,
        {"error": "bad_request", "reason": "Malformed sequence supplied in 'since' parameter."},
    )


def test_since_from_an_earlier_feed_is_accepted(admin: Client) -> None:
    """``since`` = a seq this server returned, a number or ``now`` all work."""
    admin.request("PUT", "/s")
    admin.request("PUT", "/s/a", {})
    last = admin.request("GET", "/s/_changes")[2]["last_seq"]
    admin.request("PUT", "/s/b", {})
    for since, expected in ((last, ["b"]), ("0", ["a", "b"]), ("now", [])):
        rows = admin.request("GET", f"/s/_changes?since={since}")[2]["results"]
        assert [r["id"] for r in rows] == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "Invalid heartbeat value. Expecting a positive integer value (in milliseconds)."),
        ("0", "The heartbeat value should be a positive integer (in milliseconds)."),
        ("-5", "The heartbeat value should be a positive integer (in milliseconds)."),
    ],
)
@pytest.mark.parametrize("feed", ["normal", "longpoll", "continuous"])
def test_bad_heartbeat_is_refused_before_any_feed(
    admin: Client, feed: str, value: str, reason: str
) -> None:
    """A bad heartbeat is 400 with CouchDB 3.5's reasons, on every feed (as a 3.5 node)."""
    admin.request("PUT", "/hb")
    status, _, body = admin.request("GET", f"/hb/_changes?feed={feed}&heartbeat={value}")
    assert (status, body) == (400, {"error": "bad_request", "reason": reason})


def test_bad_option_of_a_continuous_feed_is_an_answer_not_a_broken_stream(admin: Client) -> None:
    """style=bogus on a continuous feed is CouchDB's 500 badarg (05/changes-bad-params)."""
    admin.request("PUT", "/hb")
    status, _, body = admin.request("GET", "/hb/_changes?feed=continuous&style=bogus")
    assert status == 500 and body["reason"] == "badarg"


def test_compaction_runs_in_the_background_like_couchdb(admin: Client) -> None:
    """Right after _compact the old body is still there and compact_running is true.

    As the recorded CouchDB (02/doc-get-revs-info step 6) answered 200 for the old rev right
    after its _compact; a client waits for compact_running to turn false.
    """
    admin.request("PUT", "/cmp")
    first = admin.request("PUT", "/cmp/a", {"v": 1})[2]["rev"]
    admin.request("PUT", "/cmp/a", {"v": 2, "_rev": first})
    assert admin.request("POST", "/cmp/_compact", {})[0] == 202
    assert admin.request("GET", "/cmp")[2]["compact_running"] is True
    assert admin.request("GET", f"/cmp/a?rev={first}")[0] == 200
    deadline = time.monotonic() + 30
    while admin.request("GET", "/cmp")[2]["compact_running"]:
        assert time.monotonic() < deadline, "compaction did not finish"
        time.sleep(0.05)
    assert admin.request("GET", f"/cmp/a?rev={first}")[0] == 404
    info = admin.request("GET", "/cmp/a?revs_info=true")[2]["_revs_info"]
    assert [r["status"] for r in info] == ["available", "missing"]


def test_serves_on_ipv6_loopback() -> None:
    """``--host ::1`` binds an IPv6 socket, and its URL brackets the address."""
    server = CouchServer(("::1", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.url.startswith("http://[::1]:")
        conn = http.client.HTTPConnection("::1", server.server_address[1], timeout=30)
        conn.request("GET", "/_up")
        assert json.loads(conn.getresponse().read()) == {"status": "ok", "seeds": {}}
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
