"""URL helpers that keep credentials out of reprs, error messages and logs.

CouchDB URLs usually carry basic-auth credentials (``http://admin:secret@host:5984/db``).
Anything couchmapper shows to a human goes through :func:`redact_url` or :func:`redact_text`
first, so a password never ends up in a traceback, a log file or a CI transcript.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import warnings
from collections.abc import Iterable
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from couchmapper.exceptions import InsecureTransportWarning

__all__ = [
    "MASK",
    "Credentials",
    "is_loopback",
    "redact_text",
    "redact_url",
    "sends_credentials_in_clear",
    "split_credentials",
    "warn_if_insecure",
]

MASK = "***"

Credentials = tuple[str, str]

# scheme://userinfo@: the greedy userinfo runs to the LAST "@" before the path, so a password
# with a raw (invalid, unencoded) "@" is still masked completely.
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#]*)@")

# Secrets shorter than this are not replaced literally in free text: masking every "a" of a
# message because the password is "a" would destroy the message and reveal the password anyway.
_MIN_LITERAL_SECRET = 4


def _mask_userinfo(userinfo: str) -> str:
    user, sep, _password = userinfo.partition(":")
    return f"{user}:{MASK}" if sep else MASK


def redact_url(url: str) -> str:
    """Return ``url`` with the password (or a lone token) in its user info replaced by ``***``.

    The user name stays visible, because it helps debugging and is not a secret; a URL without
    credentials is returned unchanged.

    Args:
        url: any URL, e.g. ``"http://admin:secret@127.0.0.1:5984/db"``.

    Returns:
        The URL with its password masked, e.g. ``"http://admin:***@127.0.0.1:5984/db"``.
    """
    return _USERINFO_IN_TEXT.sub(lambda m: f"{m['scheme']}{_mask_userinfo(m['userinfo'])}@", url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask credentials in free text: user info of embedded URLs, then literal ``secrets``.

    Args:
        text: a message, e.g. an error reason a server or an HTTP library produced.
        secrets: known secret strings (passwords) to mask wherever they appear, also
            percent-encoded; secrets shorter than four characters are only masked in URLs.

    Returns:
        The text with every credential replaced by ``***``.
    """
    text = redact_url(text)
    forms = {
        form
        for secret in secrets
        if len(secret) >= _MIN_LITERAL_SECRET
        for form in (secret, quote(secret, safe=""))
    }
    # Longest first, so a secret that contains another one is masked whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """Split basic-auth credentials off a URL.

    Unlike python-couchdb's own parser this accepts percent-encoded ``:`` and ``@`` in the
    user name and password and keeps everything else of the URL as it was.

    Args:
        url: e.g. ``"http://admin:p%40ss@127.0.0.1:5984/db"``.

    Returns:
        The URL without user info and ``(user, password)`` decoded, or None when the URL has
        no user info.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit(SplitResult(parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, (unquote(user), unquote(password))


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address (127/8, ::1)."""
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere


def sends_credentials_in_clear(url: str, credentials: Credentials | None) -> bool:
    """Whether requests to ``url`` (without user info) would carry ``credentials`` unencrypted."""
    parts = urlsplit(url)
    return (
        credentials is not None
        and parts.scheme.lower() == "http"
        and not is_loopback(parts.hostname)
    )


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_if_insecure(url: str, credentials: Credentials | None) -> None:
    """Warn once per server and user before credentials would go over plain http elsewhere.

    The warning is an :class:`InsecureTransportWarning`; loopback hosts and https are fine.
    """
    if credentials is None or not sends_credentials_in_clear(url, credentials):
        return
    parts = urlsplit(url)
    key = (f"{parts.hostname}:{parts.port or 80}", credentials[0])
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    message = (
        f"the password of user {credentials[0]!r} will be sent unencrypted to {key[0]} "
        "(plain http to a host that is not this machine): use https://, or silence this with "
        "warnings.simplefilter('ignore', couchmapper.InsecureTransportWarning)"
    )
    warnings.warn(InsecureTransportWarning(message), stacklevel=4)
