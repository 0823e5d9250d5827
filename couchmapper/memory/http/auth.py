"""Authentication for ``couchmapper serve``: basic auth, ``AuthSession`` cookies, ``/_session``.

Users are the admin given on the command line and the ``type: "user"`` documents of the
``_users`` database. As CouchDB does, a password written into ``_users`` is stored only as a
PBKDF2 derived key (``password_scheme: "pbkdf2"``), and a cookie is
``base64url("name:hex-time:hmac")``, valid for 10 minutes, signed with a secret the server
draws at start (a restart logs everyone out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from couchmapper.exceptions import BackendError, NotFoundError
from couchmapper.memory.engine.catalog import Catalog
from couchmapper.memory.http.responses import Response, error_response, json_response

__all__ = ["Auth", "Credentials", "User"]

_TIMEOUT_S = 600
_ITERATIONS = 10000
_PUBLIC = ("", "_up", "_uuids", "favicon.ico")
_BAD_LOGIN = "Name or password is incorrect."


class Credentials(NamedTuple):
    """An admin's name and password (the password never shows in a repr)."""

    name: str
    password: str

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """``user:pass`` (``ValueError`` when either part is empty)."""
        name, sep, password = text.partition(":")
        if not sep or not name or not password:
            msg = "an admin is given as user:pass, both non-empty"
            raise ValueError(msg)
        return cls(name, password)

    def __repr__(self) -> str:
        return f"Credentials(name={self.name!r}, password='***')"


class User(NamedTuple):
    """Who a request is from: a name (None in an admin party) and roles."""

    name: str | None
    roles: list[str]

    @property
    def is_admin(self) -> bool:
        """Whether the user is a server admin."""
        return "_admin" in self.roles


def _derive(password: str, salt: str, iterations: int) -> str:
    raw = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return raw.hex()


class Auth:
    """The server's users and the answers of ``/_session``."""

    def __init__(self, admin: Credentials | None, catalog: Catalog, *, secret: bytes) -> None:
        self.admin = admin
        self.catalog = catalog
        self._secret = secret

    # -- who is asking --------------------------------------------------------------------

    def identify(self, headers: dict[str, str]) -> tuple[User | None, str | None]:
        """The user of a request and how it authenticated (``default`` or ``cookie``).

        Wrong basic credentials are a 401; an unknown or expired cookie is ignored, as
        CouchDB treats the request as anonymous then.
        """
        if self.admin is None:
            return User(None, ["_admin"]), None
        header = headers.get("authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
            except ValueError:
                raise BackendError(401, "unauthorized", _BAD_LOGIN) from None
            name, _, password = decoded.partition(":")
            user = self.login(name, password)
            if user is None:
                raise BackendError(401, "unauthorized", _BAD_LOGIN)
            return user, "default"
        token = _cookie(headers.get("cookie", ""))
        if token:
            signed = self._verify(token)
            if signed is not None:
                user = self._lookup(signed)
                if user is not None:
                    return user, "cookie"
        return None, None

    def allowed(self, user: User | None, method: str, first: str) -> bool:
        """Whether ``user`` may send ``method`` to a path starting with ``first``."""
        if self.admin is None or (user is not None and user.is_admin):
            return True
        if first in _PUBLIC:
            return True
        if user is None or first.startswith("_") or not first:
            return False
        try:
            security = self.catalog.open(first).security
        except NotFoundError:
            return False
        members = security.get("members") or {}
        names = members.get("names") or []
        roles = members.get("roles") or []
        return user.name in names or any(role in roles for role in user.roles)

    def login(self, name: str, password: str) -> User | None:
        """The user with this name and password, or None."""
        if self.admin is not None and hmac.compare_digest(name.encode(), self.admin.name.encode()):
            if hmac.compare_digest(password.encode(), self.admin.password.encode()):
                return User(name, ["_admin"])
            return None
        doc = self._user_doc(name)
        if doc is None or not isinstance(doc.get("derived_key"), str):
            return None
        iterations = doc.get("iterations")
        salt = doc.get("salt")
        if not isinstance(iterations, int) or not isinstance(salt, str):
            return None
        derived = _derive(password, salt, iterations)
        if not hmac.compare_digest(derived, doc["derived_key"]):
            return None
        roles = doc.get("roles")
        return User(name, [r for r in roles if isinstance(r, str)] if roles else [])

    def _user_doc(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.catalog.open("_users").get(f"org.couchdb.user:{name}")
        except NotFoundError:
            return None
        return found if isinstance(found, dict) and found.get("type") == "user" else None

    def _lookup(self, name: str) -> User | None:
        if self.admin is not None and name == self.admin.name:
            return User(name, ["_admin"])
        doc = self._user_doc(name)
        if doc is None:
            return None
        roles = doc.get("roles") or []
        return User(name, [r for r in roles if isinstance(r, str)])

    # -- cookies --------------------------------------------------------------------------

    def _sign(self, name: str, stamp: str) -> str:
        digest = hmac.new(self._secret, f"{name}:{stamp}".encode(), hashlib.sha256).hexdigest()
        raw = f"{name}:{stamp}:{digest}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def make_cookie(self, name: str) -> str:
        """A signed ``AuthSession`` token for ``name``."""
        return self._sign(name, format(int(time.time()), "X"))

    def _verify(self, token: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except ValueError:
            return None
        name, _, rest = raw.partition(":")
        stamp, _, _ = rest.partition(":")
        try:
            issued = int(stamp, 16)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(name, stamp), token.rstrip("=")):
            return None
        return name if time.time() - issued < _TIMEOUT_S else None

    # -- /_session ------------------------------------------------------------------------

    def session(
        self,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        user: User | None,
        via: str | None,
    ) -> Response:
        """``GET``/``POST``/``DELETE /_session``."""
        if method in ("GET", "HEAD"):
            shown = user or User(None, [])
            info: dict[str, Any] = {"authentication_handlers": ["cookie", "default"]}
            if via is not None:
                info["authenticated"] = via
            context = {"name": shown.name, "roles": shown.roles}
            return json_response(200, {"ok": True, "userCtx": context, "info": info})
        if method == "POST":
            form = _form_or_json(headers, body)
            name, password = form.get("name"), form.get("password")
            found = None
            if isinstance(name, str) and isinstance(password, str):
                found = self.login(name, password)
            if found is None or found.name is None:
                return error_response(401, "unauthorized", _BAD_LOGIN)
            cookie = f"AuthSession={self.make_cookie(found.name)}; Version=1; Path=/; HttpOnly"
            answer = {"ok": True, "name": found.name, "roles": found.roles}
            return json_response(200, answer, {"set-cookie": cookie})
        if method == "DELETE":
            cleared = "AuthSession=; Version=1; Path=/; HttpOnly"
            return json_response(200, {"ok": True}, {"set-cookie": cleared})
        return error_response(
            405,
            "method_not_allowed",
            "Only GET,HEAD,POST,DELETE allowed",
            {"allow": "GET,HEAD,POST,DELETE"},
        )

    def hash_user_doc(self, body: bytes) -> bytes:
        """A ``_users`` write with its clear ``password`` replaced by a derived key."""
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if not isinstance(doc, dict) or not isinstance(doc.get("password"), str):
            return body
        salt = os.urandom(16).hex()
        doc["derived_key"] = _derive(doc.pop("password"), salt, _ITERATIONS)
        doc.update(password_scheme="pbkdf2", pbkdf2_prf="sha256", salt=salt)
        doc["iterations"] = _ITERATIONS
        return json.dumps(doc).encode()


def _cookie(header: str) -> str | None:
    """The ``AuthSession`` value of a ``Cookie`` header."""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "AuthSession" and value:
            return value
    return None


def _form_or_json(headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
    """The ``POST /_session`` body: a form or a JSON object."""
    text = (body or b"").decode("utf-8", "replace")
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(text))
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        raise BackendError(400, "bad_request", "invalid UTF-8 JSON") from None
    return found if isinstance(found, dict) else {}
