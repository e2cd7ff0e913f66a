"""Who may use the registry server (bearer tokens) and who hears about changes (webhooks).

Both live in the registry's SQL database beside the models (the tables are declared with the
rest of the schema in ``sql.py``) but are a separate concern from versions and aliases: the
server reads tokens on every request, the event dispatcher reads webhooks on every change,
and the CLI's ``registry token`` and ``registry webhook`` commands manage them.

Scopes are ranked: ``read`` (download, list), ``write`` (also register, alias, tag, and tighten a
signing policy), ``admin`` (also relax a signing policy: ``signing_policy.py``).  Creating and
revoking tokens and webhooks is done on the registry's database (the local CLI) and audited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.errors import Conflict, InvalidInput, NotFound, Unauthorized
from conveyor.registry.audit import Actor, local_actor, record
from conveyor.registry.refs import check_name
from conveyor.registry.schema import _utc, now, tokens_table, webhooks_table

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")  # each includes the ones before it


def allows(scope: str | None, needed: Scope) -> bool:
    """Whether a token of ``scope`` may do what needs ``needed``."""
    return scope in SCOPES and SCOPES.index(cast("Scope", scope)) >= SCOPES.index(needed)


@dataclass(frozen=True)
class TokenIdentity:
    """What a session keeps to re-check its token: never the token itself."""

    id: int
    name: str
    scope: Scope


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Bearer tokens: only their sha256 is stored, so a token is shown once, when it is made."""

    def __init__(self, engine: Engine, actor: Actor | None = None) -> None:
        self.engine = engine
        self.actor = actor or local_actor()

    def create(self, name: str, scope: Scope) -> str:
        """A new bearer token named ``name`` with ``scope`` read, write or admin."""
        check_name(name, "token name")
        if scope not in SCOPES:
            raise InvalidInput(f"scope must be {', '.join(SCOPES)}, got {scope!r}")
        token = "cvt_" + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(tokens_table).values(name=name, token_hash=hash_token(token), scope=scope, created_at=now())
                )
                record(conn, self.actor, "token.created", target=name, after={"scope": scope})
        except IntegrityError:
            raise Conflict(f"a token named {name!r} exists already") from None
        return token

    def identify(self, token: str) -> TokenIdentity | None:
        """The identity of a valid (known, not revoked) token, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(tokens_table.c.id, tokens_table.c.name, tokens_table.c.scope).where(
                    tokens_table.c.token_hash == hash_token(token), tokens_table.c.revoked_at.is_(None)
                )
            ).first()
        return TokenIdentity(row.id, row.name, row.scope) if row else None

    def scope_of(self, token: str) -> tuple[str, Scope] | None:
        """The (name, scope) of a valid token, or None."""
        found = self.identify(token)
        return (found.name, found.scope) if found else None

    def still_valid(self, identity: TokenIdentity) -> None:
        """Refuse (Unauthorized, saying why) a session whose token was revoked, removed or changed scope."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(tokens_table.c.scope, tokens_table.c.revoked_at).where(tokens_table.c.id == identity.id)
            ).first()
        if row is None:
            raise Unauthorized(f"token {identity.name!r} no longer exists: log in again")
        if row.revoked_at is not None:
            raise Unauthorized(f"token {identity.name!r} was revoked: log in with another token")
        if row.scope != identity.scope:
            raise Unauthorized(f"token {identity.name!r} now has {row.scope} scope: log in again")

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tokens_table).order_by(tokens_table.c.name)).all()
        return [
            {
                "name": r.name,
                "scope": r.scope,
                "created_at": _utc(r.created_at).isoformat(),
                "revoked": r.revoked_at is not None,
            }
            for r in rows
        ]

    def revoke(self, name: str) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(tokens_table)
                .where(tokens_table.c.name == name, tokens_table.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
            if result.rowcount == 0:
                raise NotFound(f"no active token named {name!r}")
            record(conn, self.actor, "token.revoked", target=name)


class WebhookStore:
    """URLs that receive a signed POST for every registry event (see ``events.py``)."""

    def __init__(self, engine: Engine, actor: Actor | None = None) -> None:
        self.engine = engine
        self.actor = actor or local_actor()

    def add(self, url: str, secret: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"webhook URL must be http(s)://, got {url!r}")
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(webhooks_table).values(url=url, secret=secret, created_at=now()))
                record(conn, self.actor, "webhook.added", target=_shown(url))
        except IntegrityError:
            raise Conflict(f"webhook {url} exists already") from None

    def all(self) -> list[tuple[str, str]]:
        """(url, secret) of every webhook, oldest first."""
        with self.engine.connect() as conn:
            return [(r.url, r.secret) for r in conn.execute(select(webhooks_table).order_by(webhooks_table.c.id))]

    def remove(self, url: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(delete(webhooks_table).where(webhooks_table.c.url == url)).rowcount == 0:
                raise NotFound(f"no webhook {url}")
            record(conn, self.actor, "webhook.removed", target=_shown(url))


def _shown(url: str) -> str:
    """A webhook URL as the audit log keeps it: without a ``user:password@`` (its query may hold a key too)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host, query=""))
