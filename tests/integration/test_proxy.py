"""The recording, fault-injecting proxy of the test suite, through raw HTTP and a backend."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest
from _proxy import RecordingProxy

from couchmapper.backends.couchdb import CouchDBBackend
from couchmapper.exceptions import BackendUnavailable, DocumentNotFound

_JSON = {"Content-Type": "application/json"}


def _wait_until(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = "condition not reached in time"
            raise AssertionError(msg)
        time.sleep(0.01)


@pytest.fixture
def conn(proxy: RecordingProxy) -> Iterator[http.client.HTTPConnection]:
    """A plain keep-alive HTTP connection to the proxy."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    yield connection
    connection.close()


def _json_request(
    conn: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> tuple[int, object]:
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    conn.request(method, path, body=payload, headers=headers)
    answer = conn.getresponse()
    data = answer.read()
    return answer.status, (json.loads(data) if data else None)


def test_records_keep_alive_requests_separately(
    proxy: RecordingProxy, conn: http.client.HTTPConnection, db_name: str
) -> None:
    """Requests sent on one kept-alive connection are recorded one by one, with JSON bodies."""
    status, _ = _json_request(conn, "PUT", f"/{db_name}/a", {"v": 1})
    assert status == 201
    status, _ = _json_request(conn, "POST", f"/{db_name}/_bulk_docs", {"docs": [{"_id": "b"}]})
    assert status == 201
    status, body = _json_request(conn, "GET", f"/{db_name}/_all_docs?limit=5")
    assert status == 200
    assert isinstance(body, dict)
    assert [row["id"] for row in body["rows"]] == ["a", "b"]
    assert proxy.open_connections == 1
    seen = [(r.method, r.path, r.body, r.status) for r in proxy.requests]
    assert seen == [
        ("PUT", f"/{db_name}/a", {"v": 1}, 201),
        ("POST", f"/{db_name}/_bulk_docs", {"docs": [{"_id": "b"}]}, 201),
        ("GET", f"/{db_name}/_all_docs?limit=5", None, 200),
    ]


def test_requests_to_filters_and_clear_forgets(
    proxy: RecordingProxy, conn: http.client.HTTPConnection, db_name: str
) -> None:
    """requests_to() filters by path fragment and method; clear() empties the record."""
    _json_request(conn, "POST", f"/{db_name}/_bulk_docs", {"docs": [{"_id": "x"}]})
    _json_request(conn, "GET", f"/{db_name}/x")
    _json_request(conn, "POST", f"/{db_name}/_find", {"selector": {}})
    assert [r.method for r in proxy.requests_to("_bulk_docs")] == ["POST"]
    assert [r.path for r in proxy.requests_to(db_name, method="GET")] == [f"/{db_name}/x"]
    proxy.clear()
    assert proxy.requests == []


def test_records_chunked_request_body(
    proxy: RecordingProxy, conn: http.client.HTTPConnection, db_name: str
) -> None:
    """A chunked request body is relayed intact and recorded de-chunked."""
    chunks = iter([b'{"docs": [{"_id": "c1"},', b' {"_id": "c2"}]}'])
    conn.request(
        "POST",
        f"/{db_name}/_bulk_docs",
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    answer = conn.getresponse()
    assert answer.status == 201
    assert [r["id"] for r in json.loads(answer.read())] == ["c1", "c2"]
    (recorded,) = proxy.requests_to("_bulk_docs")
    assert recorded.body == {"docs": [{"_id": "c1"}, {"_id": "c2"}]}
    assert recorded.headers["transfer-encoding"] == "chunked"


def test_head_request_is_relayed_without_body(
    proxy: RecordingProxy, conn: http.client.HTTPConnection, db_name: str
) -> None:
    """A HEAD answer has no body; the connection stays usable for the next request."""
    conn.request("HEAD", f"/{db_name}")
    answer = conn.getresponse()
    assert answer.status == 200
    assert answer.read() == b""
    status, body = _json_request(conn, "GET", f"/{db_name}")
    assert status == 200
    assert isinstance(body, dict)
    assert body["db_name"] == db_name


def test_cut_before_drops_the_request(
    proxy: RecordingProxy, conn: http.client.HTTPConnection, couch_backend: CouchDBBackend
) -> None:
    """cut_before closes the client connection and the server never sees the request."""
    proxy.cut_before(path_contains="_bulk_docs")
    body = json.dumps({"docs": [{"_id": "lost"}]}).encode()
    conn.request("POST", f"/{couch_backend.name}/_bulk_docs", body=body, headers=_JSON)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    (recorded,) = proxy.requests_to("_bulk_docs")
    assert recorded.fault == "cut_before"
    assert recorded.status is None
    with pytest.raises(DocumentNotFound):
        couch_backend.get("lost")
    assert proxy.pending_faults == []


def test_cut_after_applies_but_drops_the_answer(
    proxy: RecordingProxy, conn: http.client.HTTPConnection, couch_backend: CouchDBBackend
) -> None:
    """cut_after lets the server apply the request, then closes without the answer."""
    proxy.cut_after(path_contains="_bulk_docs")
    body = json.dumps({"docs": [{"_id": "written"}]}).encode()
    conn.request("POST", f"/{couch_backend.name}/_bulk_docs", body=body, headers=_JSON)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    (recorded,) = proxy.requests_to("_bulk_docs")
    assert recorded.fault == "cut_after"
    assert recorded.status == 201
    assert couch_backend.get("written")["_id"] == "written"


def test_fault_hits_only_the_next_matching_request(
    proxy: RecordingProxy, conn: http.client.HTTPConnection, db_name: str
) -> None:
    """Non-matching requests pass; the fault fires once; later matching requests pass."""
    proxy.cut_before(path_contains="_bulk_docs", method="POST")
    status, _ = _json_request(conn, "GET", f"/{db_name}/_all_docs")
    assert status == 200
    assert len(proxy.pending_faults) == 1
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _json_request(conn, "POST", f"/{db_name}/_bulk_docs", {"docs": [{"_id": "a"}]})
    conn.close()
    status, body = _json_request(conn, "POST", f"/{db_name}/_bulk_docs", {"docs": [{"_id": "a"}]})
    assert status == 201
    assert isinstance(body, list)
    assert body[0]["ok"] is True
    assert [r.fault for r in proxy.requests_to("_bulk_docs")] == ["cut_before", None]


def test_backend_through_proxy_is_recorded(
    proxy: RecordingProxy, proxied_backend: CouchDBBackend
) -> None:
    """A backend's requests through the proxy are recorded with their JSON-encoded options."""
    proxied_backend.bulk_docs([{"_id": "a"}, {"_id": "b"}])
    proxied_backend.all_docs(startkey="a", limit=1)
    (bulk,) = proxy.requests_to("_bulk_docs")
    assert bulk.body == {"docs": [{"_id": "a"}, {"_id": "b"}]}
    (rows,) = proxy.requests_to("_all_docs")
    assert rows.method == "GET"
    assert "startkey=%22a%22" in rows.path
    assert "limit=1" in rows.path


def test_backend_cut_after_raises_unavailable_without_retry(
    proxy: RecordingProxy, proxied_backend: CouchDBBackend
) -> None:
    """A cut answer is BackendUnavailable, sent once (no silent resend), yet applied."""
    proxy.cut_after(path_contains="_bulk_docs")
    with pytest.raises(BackendUnavailable) as caught:
        proxied_backend.bulk_docs([{"_id": "once", "v": 1}])
    assert caught.value.status is None
    assert len(proxy.requests_to("_bulk_docs")) == 1
    assert proxied_backend.get("once")["v"] == 1


def test_backend_cut_before_raises_unavailable_and_writes_nothing(
    proxy: RecordingProxy, proxied_backend: CouchDBBackend
) -> None:
    """A request cut before the server saw it is BackendUnavailable and changes nothing."""
    proxy.cut_before(path_contains="_bulk_docs")
    with pytest.raises(BackendUnavailable):
        proxied_backend.bulk_docs([{"_id": "never"}])
    with pytest.raises(DocumentNotFound):
        proxied_backend.get("never")
    assert len(proxy.requests_to("_bulk_docs")) == 1


def test_backend_survives_server_closing_idle_connections(
    proxy: RecordingProxy, proxied_backend: CouchDBBackend
) -> None:
    """Keep-alive connections closed while idle are replaced, not reported as failures."""
    proxied_backend.put({"_id": "a"})
    _wait_until(lambda: proxy.open_connections == 1)
    proxy.drop_connections()
    _wait_until(lambda: proxy.open_connections == 0)
    assert proxied_backend.get("a")["_id"] == "a"
    assert [r.method for r in proxy.requests] == ["PUT", "GET"]


def test_stop_closes_everything(server_url: str) -> None:
    """After stop() nothing listens on the port and no relay thread is left."""
    host_port = server_url.rpartition("@")[2].removeprefix("http://").split("/")[0]
    host, _, port = host_port.rpartition(":")
    proxy = RecordingProxy((host, int(port))).start()
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.request("GET", "/")
    assert connection.getresponse().read()
    proxy.stop()
    assert proxy.open_connections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
    connection.close()
