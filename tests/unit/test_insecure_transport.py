"""Credentials over plain http to another machine: InsecureTransportWarning, before any request.

No test here sends traffic: backends are built without a request, and the one path that would
connect (``connect()``) is stopped by the warning turned into an error, with sockets guarded.
"""

from __future__ import annotations

import socket
import warnings
from typing import Any

import pytest

import couchmapper as cm
from couchmapper._url import is_loopback, sends_credentials_in_clear
from couchmapper.backends.couchdb import CouchDBServer


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to resolve or connect fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        msg = f"network use attempted: {args!r}"
        raise AssertionError(msg)

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_warning_is_public_and_a_user_warning() -> None:
    """cm.InsecureTransportWarning is exported and a UserWarning users can filter."""
    assert "InsecureTransportWarning" in cm.__all__
    assert issubclass(cm.InsecureTransportWarning, UserWarning)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("[::1]", True),
        ("::1", True),
        ("couch.example", False),
        ("10.0.0.5", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    """Only this machine's names and addresses count as loopback."""
    assert is_loopback(host) is loopback


def test_what_counts_as_clear_text() -> None:
    """Credentials + http + a host elsewhere: clear text; https, loopback or no user: not."""
    who = ("ann", "pw")
    assert sends_credentials_in_clear("http://couch.example:5984", who)
    assert sends_credentials_in_clear("HTTP://10.0.0.5/db", who)
    assert not sends_credentials_in_clear("https://couch.example:6984", who)
    assert not sends_credentials_in_clear("http://127.0.0.1:5984", who)
    assert not sends_credentials_in_clear("http://localhost:5984", who)
    assert not sends_credentials_in_clear("http://couch.example:5984", None)


def test_warns_once_per_server_and_user_at_construction(no_network: None) -> None:
    """Building a backend warns before any request, naming user and host, never the password."""
    url = "http://carol:top-secret-9@couch-a.example:5984"
    with pytest.warns(cm.InsecureTransportWarning) as caught:
        server = CouchDBServer(url)
        server.database("people")  # the same server and user: no second warning
    (warning,) = caught.list
    text = str(warning.message)
    assert "'carol'" in text and "couch-a.example:5984" in text and "https://" in text
    assert "top-secret-9" not in text
    with warnings.catch_warnings():
        warnings.simplefilter("error", cm.InsecureTransportWarning)
        CouchDBServer(url)  # already warned for this URL: silent
    with pytest.warns(cm.InsecureTransportWarning):
        CouchDBServer("http://dave:pw@couch-a.example:5984")  # another user: warned


def test_no_warning_for_https_loopback_or_anonymous(no_network: None) -> None:
    """https, a loopback host or a URL without credentials builds silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", cm.InsecureTransportWarning)
        CouchDBServer("https://erin:pw@couch-b.example:6984")
        CouchDBServer("http://erin:pw@127.0.0.1:5984")
        CouchDBServer("http://erin:pw@localhost:5984")
        CouchDBServer("http://couch-b.example:5984")


def test_connect_warns_before_any_request(no_network: None) -> None:
    """connect() raises the warning (made an error) before it resolves or connects anything."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", cm.InsecureTransportWarning)
        with pytest.raises(cm.InsecureTransportWarning, match="'frank'"):
            cm.connect("http://frank:pw-frank@couch-c.example:5984/db")


def test_can_be_silenced(no_network: None) -> None:
    """A filter on the class silences it."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", cm.InsecureTransportWarning)
        CouchDBServer("http://gina:pw@couch-d.example:5984")
    assert seen == []
