"""Who may press a button in the dashboard: sessions from registry tokens, and CSRF tokens.

Reading is open unless ``--require-login``; every mutating request needs (1) the session's CSRF
token in the form or the ``X-CSRF-Token`` header, and (2) when the registry has tokens, a
session opened with a *write* token. The token itself is checked once at login against the
registry's token store and never kept: the signed session cookie (HttpOnly, SameSite=Strict)
holds only the token's name and scope, and no page renders a secret.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from conveyor.errors import Forbidden, Unauthorized


@dataclass
class Viewer:
    """The person behind a request: anonymous, or logged in with a named token of some scope."""

    name: str | None
    scope: str | None

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


class Auth:
    """Login against a registry's token store (``None``: a registry without tokens, e.g. remote)."""

    def __init__(self, tokens: Any | None, require_login: bool = False) -> None:
        self.tokens = tokens
        self.require_login = require_login

    @property
    def tokens_exist(self) -> bool:
        return bool(self.tokens is not None and self.tokens.list())

    def viewer(self, request: Request) -> Viewer:
        session = request.session
        return Viewer(session.get("name"), session.get("scope"))

    def login(self, request: Request, token: str) -> Viewer:
        if self.tokens is None:
            raise Unauthorized("this registry keeps no tokens here: log in where the registry's database is")
        found = self.tokens.scope_of(token.strip())
        if found is None:
            raise Unauthorized("invalid or revoked token")
        name, scope = found
        request.session.clear()
        request.session.update({"name": name, "scope": scope, "csrf": secrets.token_urlsafe(24)})
        return Viewer(name, scope)

    def login_needed(self, tokens_exist: bool) -> bool:
        """Buttons need a write login when the registry keeps tokens (or logins are required anyway)."""
        return self.require_login or tokens_exist

    def csrf_ok(self, request: Request, given: Any) -> bool:
        expected = request.session.get("csrf")
        return bool(expected) and hmac.compare_digest(str(expected), str(given or ""))

    def check_read(self, request: Request) -> None:
        if self.require_login and self.viewer(request).name is None:
            raise Unauthorized("log in with a registry token to see this dashboard")

    def check_write(self, request: Request, form: dict[str, Any]) -> Viewer:
        """CSRF first (a forged request learns nothing), then who is asking."""
        if not self.csrf_ok(request, form.get("csrf") or request.headers.get("x-csrf-token")):
            raise Forbidden("missing or stale CSRF token: reload the page and try again")
        viewer = self.viewer(request)
        if self.login_needed(self.tokens_exist):
            if viewer.name is None:
                raise Unauthorized("log in with a registry token with write scope to do this")
            if not viewer.can_write:
                raise Forbidden(f"token {viewer.name!r} has read scope; this action needs write")
        return viewer


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)
