"""The registry's tables, and the SQLAlchemy engine for SQLite (default) or PostgreSQL.

The audit log (``audit.py``) refuses updates and deletions in the database itself: triggers made
with its table.  A table added here reaches an existing database the next time it is opened
(``metadata.create_all`` creates what is missing).

SQLite connections run in WAL mode with foreign keys on and take the write lock when a
transaction begins (``BEGIN IMMEDIATE``), so two processes never deadlock upgrading a read lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.schema import DDL

from conveyor.extras import require
from conveyor.registry.storage_errors import database_error

metadata = MetaData()

models_table = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=dict),
    Column("next_version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

versions_table = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False, default="ready"),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("framework", String(64)),
    Column("framework_version", String(64)),
    Column("tags", JSON, nullable=False, default=dict),
    Column("properties", JSON, nullable=False, default=dict),
    Column("lineage", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "version"),
)

files_table = Table(
    "version_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    UniqueConstraint("version_id", "path"),
)

aliases_table = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("protected", Boolean, nullable=False, default=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "name"),
)

tokens_table = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scope", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

webhooks_table = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", String(2048), nullable=False, unique=True),
    Column("secret", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


audit_table = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(160), nullable=False),
    Column("source", String(255), nullable=False),
    Column("action", String(48), nullable=False),
    Column("model", String(128), index=True),
    Column("target", String(256)),
    Column("before", JSON),
    Column("after", JSON),
)

_APPEND_ONLY = "the audit log is append-only"
for _statement in (
    f"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
    f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
):
    event.listen(audit_table, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
for _statement in (
    "CREATE OR REPLACE FUNCTION conveyor_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION conveyor_audit_append_only()",
):
    event.listen(audit_table, "after_create", DDL(_statement).execute_if(dialect="postgresql"))


BLOB_LOCK = 7274002  # PostgreSQL advisory lock: versions are made under it shared, gc deletes under it alone


def hold_blob_lock(conn: Connection, alone: bool = False, then: Callable[[], None] | None = None) -> None:
    """Hold the blob lock until the transaction ends (and run ``then`` under it): shared while a version
    is made (its blobs checked, its rows inserted), ``alone`` while gc lists references and deletes what
    none names.  SQLite needs nothing more: each write transaction (``BEGIN IMMEDIATE``) runs alone."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock{'' if alone else '_shared'}({BLOB_LOCK})"))
    if then is not None:
        then()


def now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str) -> Engine:
    """The engine for ``url``: its storage failures (full, read-only, unreachable) raise Conveyor's named errors."""
    engine = _make_engine(normalize_url(url))

    @event.listens_for(engine, "handle_error")
    def _storage_trouble(context: Any) -> None:
        mapped = database_error(context.original_exception, url, context.is_disconnect)
        if mapped is not None:
            raise mapped

    return engine


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks

        return engine
    if url.startswith("postgresql+psycopg"):
        require("psycopg", extra="postgres", for_="a registry on PostgreSQL")
    return create_engine(url, pool_pre_ping=True)
