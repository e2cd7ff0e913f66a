"""The registry's audit log: who changed what, when and from where, append-only.

Every change that decides what gets served or who may act is one row of ``audit_log`` (declared
with the rest of the schema in ``schema.py``), written in the same transaction as the change, so
there is no change without its record and no record of a change that did not happen: versions
created, archived and deleted, aliases moved and deleted, tags changed, signing policies
tightened or relaxed (and refused attempts to relax one), tokens created and revoked, webhooks
added and removed.  *Who* is the token's name on the registry server, or ``local:<os user>`` for
the local CLI, which works on the database directly and so is the registry's owner; *where* is
the client's address, or this machine's name.

Nothing in Conveyor updates or deletes a row: there is no API for it, and the database itself
refuses (triggers on SQLite and PostgreSQL, ``schema.py``).  Whoever can write the database file
or owns the PostgreSQL role can still drop them: the log records the registry's users, not its
database administrators (docs/security.md).
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, insert, select

from conveyor.registry.schema import _utc, audit_table, now

OWNER = "owner"  # the scope of whoever works on the registry's database directly


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: a token's name and scope, or the local owner; and from where."""

    who: str
    where: str
    scope: str  # read, write, admin, or owner

    @property
    def may_relax_policies(self) -> bool:
        return self.scope in ("admin", OWNER)


def local_actor() -> Actor:
    """The person running this process on the registry's database: its owner."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        user = f"uid {os.getuid()}"
    return Actor(who=f"local:{user}", where=socket.gethostname(), scope=OWNER)


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    model: str | None = None,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Append one entry, inside the caller's transaction."""
    conn.execute(
        insert(audit_table).values(
            at=now(),
            actor=actor.who[:160],
            source=actor.where[:255],
            action=action,
            model=model,
            target=target,
            before=before,
            after=after,
        )
    )


def record_alias_move(
    conn: Connection, actor: Actor, model: str, alias: str, existing: Any, version: int, protect: bool | None
) -> None:
    """An alias moved to ``version`` from where ``existing`` (its row, or None) pointed."""
    before = {"version": existing.version, "protected": existing.protected} if existing else None
    protected = existing.protected if existing is not None and protect is None else bool(protect)
    record(conn, actor, "alias.moved", model, f"{model}@{alias}", before, {"version": version, "protected": protected})


def changed_keys(before: dict[str, str], after: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Only the tags a change touched, before and after (a key missing on one side was absent)."""
    keys = {k for k in {*before, *after} if before.get(k) != after.get(k)}
    return {k: before[k] for k in keys if k in before}, {k: after[k] for k in keys if k in after}


def one_line(value: Any) -> str:
    """An entry's before or after on one line: ``version=2 protected=False``."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{key}={item}" for key, item in value.items()) or "(none)"
    return str(value)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    who: str
    where: str
    action: str
    model: str | None = None
    target: str | None = None
    before: Any = None
    after: Any = None


class AuditLog:
    """Reading the log; writing is :func:`record`, inside each change's own transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def entries(
        self, model: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Entries oldest first (the newest ``limit`` of them), optionally of one model and after ``since``."""
        query = select(audit_table).order_by(audit_table.c.id.desc())
        if model is not None:
            query = query.where(audit_table.c.model == model)
        if since is not None:
            query = query.where(audit_table.c.at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(
                id=r.id,
                at=_utc(r.at),
                who=r.actor,
                where=r.source,
                action=r.action,
                model=r.model,
                target=r.target,
                before=r.before,
                after=r.after,
            )
            for r in reversed(rows)
        ]
