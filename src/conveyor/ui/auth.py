"""Who may press a button in the dashboard: sessions from registry tokens, re-checked, and CSRF tokens.

Reading is open unless ``--require-login``; every mutating request needs (1) the session's CSRF
token in the form or the ``X-CSRF-Token`` header, and (2) when the registry has tokens, a
session opened with a *write* token (the audit log, an *admin* one).  The token itself is never
kept: the signed session cookie (HttpOnly, SameSite=Strict) holds the token's row id, name and
scope, and no page renders a secret.  Every request that carries a session re-checks it
(:class:`SessionGuard`): a session whose token was revoked, removed or given another scope ends
at once, and so does one idle for longer than the idle timeout or older than its longest life;
the refusal says why.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.errors import Forbidden, Unauthorized
from conveyor.registry.access import Scope as TokenScope
from conveyor.registry.access import TokenIdentity, allows
from conveyor.ui.settings import DashboardSessionSettings


@dataclass
class Viewer:
    """The person behind a request: anonymous, or logged in with a named token of some scope."""

    name: str | None
    scope: str | None

    @property
    def can_write(self) -> bool:
        return allows(self.scope, "write")

    @property
    def can_admin(self) -> bool:
        return allows(self.scope, "admin")


class Auth:
    """Login against a registry's token store (``None``: a registry without tokens, e.g. remote)."""

    def __init__(
        self, tokens: Any | None, require_login: bool = False, sessions: DashboardSessionSettings | None = None
    ) -> None:
        self.tokens = tokens
        self.require_login = require_login
        sessions = sessions or DashboardSessionSettings()
        self.idle_s = sessions.session_idle_minutes * 60
        self.max_s = sessions.session_max_hours * 3600

    @property
    def tokens_exist(self) -> bool:
        return bool(self.tokens is not None and self.tokens.list())

    def viewer(self, request: Request) -> Viewer:
        session = request.session
        return Viewer(session.get("name"), session.get("scope"))

    def login(self, request: Request, token: str) -> Viewer:
        if self.tokens is None:
            raise Unauthorized("this registry keeps no tokens here: log in where the registry's database is")
        found = self.tokens.identify(token.strip())
        if found is None:
            raise Unauthorized("invalid or revoked token")
        request.session.clear()
        request.session.update(
            {
                "tid": found.id,
                "name": found.name,
                "scope": found.scope,
                "seen": round(time.time(), 3),
                "since": round(time.time(), 3),
                "csrf": secrets.token_urlsafe(24),
            }
        )
        return Viewer(found.name, found.scope)

    def session_problem(self, session: dict[str, Any]) -> str | None:
        """Why a logged-in session is over (idle too long, its token revoked or changed), or None: it stands."""
        now = time.time()
        if now - float(session.get("since", 0)) > self.max_s:
            return f"your session began more than {self.max_s / 3600:g} hours ago: log in again"
        if now - float(session.get("seen", 0)) > self.idle_s:
            return f"your session was idle for more than {_minutes(self.idle_s)}: log in again"
        return self.token_problem(session)

    def token_problem(self, session: dict[str, Any]) -> str | None:
        """Why a logged-in session's token no longer stands (revoked, removed, re-scoped), or None."""
        if self.tokens is None or "tid" not in session:
            return "this session was opened by another dashboard: log in again"
        try:
            self.tokens.still_valid(TokenIdentity(int(session["tid"]), str(session["name"]), session["scope"]))
        except Unauthorized as exc:
            return str(exc)
        return None

    def login_needed(self, tokens_exist: bool) -> bool:
        """Buttons need a write login when the registry keeps tokens (or logins are required anyway)."""
        return self.require_login or tokens_exist

    def csrf_ok(self, request: Request, given: Any) -> bool:
        expected = request.session.get("csrf")
        return bool(expected) and hmac.compare_digest(str(expected), str(given or ""))

    @staticmethod
    def _ended(request: Request, otherwise: str) -> str:
        """Why nobody is logged in: the session that just ended, else ``otherwise``."""
        return str(request.scope.get("state", {}).get("session_ended") or otherwise)

    def check_read(self, request: Request) -> None:
        if self.require_login and self.viewer(request).name is None:
            raise Unauthorized(self._ended(request, "log in with a registry token to see this dashboard"))

    def check_admin(self, request: Request) -> Viewer:
        """The audit log: an admin login where the registry keeps tokens (or logins are required)."""
        return self._scoped(
            request, "admin", "log in with a registry token with admin scope to see this", "the audit log needs admin"
        )

    def check_write(self, request: Request, form: dict[str, Any]) -> Viewer:
        """A session that just ended says why (it did nothing); else CSRF first (a forged request learns
        nothing), then who is asking."""
        ended = request.scope.get("state", {}).get("session_ended")
        if ended:
            raise Unauthorized(str(ended))
        if not self.csrf_ok(request, form.get("csrf") or request.headers.get("x-csrf-token")):
            raise Forbidden("missing or stale CSRF token: reload the page and try again")
        return self._scoped(
            request, "write", "log in with a registry token with write scope to do this", "this action needs write"
        )

    def _scoped(self, request: Request, needed: TokenScope, log_in: str, refused: str) -> Viewer:
        """The viewer, where the registry keeps tokens (or logins are required) logged in with ``needed`` scope."""
        viewer = self.viewer(request)
        if self.login_needed(self.tokens_exist):
            if viewer.name is None:
                raise Unauthorized(self._ended(request, log_in))
            if not allows(viewer.scope, needed):
                raise Forbidden(f"token {viewer.name!r} has {viewer.scope} scope; {refused}")
        return viewer


class SessionGuard:
    """Re-checks a logged-in session on every request it comes with (pure ASGI, inside the session
    middleware): idle too long, or its token revoked, removed or re-scoped, the session is cleared
    and the reason kept for the refusal; otherwise its last-seen time moves on."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = scope.get("session") if scope["type"] == "http" else None
        if session and session.get("name") and "/static/" not in scope["path"]:
            problem = await anyio.to_thread.run_sync(self.auth.session_problem, session)
            if problem is None:
                session["seen"] = round(time.time(), 3)
            else:
                session.clear()
                scope.setdefault("state", {})["session_ended"] = problem
        await self.app(scope, receive, send)


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)
