"""Registry metadata in SQL through SQLAlchemy: SQLite (default) or PostgreSQL.

Version numbers come from a per-model counter updated inside the same
transaction that inserts the version, under a write lock (``BEGIN IMMEDIATE``
on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), so concurrent
registrations from several processes get distinct numbers. The tables and the
engine: :mod:`conveyor.registry.schema`.  Each change is audited in its own transaction as done by
the store's ``actor`` (``acting_as``; the local owner by default), who may or may not relax a policy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from conveyor.errors import Conflict, Forbidden, NotFound
from conveyor.registry import signing_policy
from conveyor.registry.audit import Actor, changed_keys, local_actor, record, record_alias_move
from conveyor.registry.records import Alias, FileEntry, Lineage, ModelVersion, NewVersion, RegisteredModel
from conveyor.registry.refs import ModelRef, check_alias, check_name, check_tag_key, check_version
from conveyor.registry.schema import (
    _utc,
    aliases_table,
    files_table,
    hold_blob_lock,
    make_engine,
    metadata,
    models_table,
    now,
    versions_table,
)

Check = Callable[[], None] | None


class SqlStore:
    """Models, versions and aliases (tokens and webhooks: ``access.py``, in the same database)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.actor = local_actor()
        self.engine = make_engine(url)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # several processes may open a new database at once: create the schema one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(7274001)"))
            metadata.create_all(conn)

    def acting_as(self, actor: Actor) -> SqlStore:
        """This store (the same engine) with its changes done, and audited, as ``actor``."""
        acting = copy.copy(self)
        acting.actor = actor
        return acting

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ---- reading ----------------------------------------------------------------------------

    def _model_row(self, conn: Connection, name: str, lock: bool = False) -> Any:
        query = select(models_table).where(models_table.c.name == name)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return conn.execute(query).first()

    def _require_model(self, conn: Connection, name: str, lock: bool = False) -> Any:
        row = self._model_row(conn, check_name(name), lock)
        if row is None:
            raise NotFound(f"model {name!r} not found")
        return row

    def _aliases_by_version(self, conn: Connection, model_id: int) -> dict[int, list[str]]:
        rows = conn.execute(
            select(aliases_table.c.name, aliases_table.c.version_id).where(aliases_table.c.model_id == model_id)
        )
        found: dict[int, list[str]] = {}
        for alias, version_id in rows:
            found.setdefault(version_id, []).append(alias)
        return found

    def _version_record(self, conn: Connection, name: str, row: Any, aliases: list[str]) -> ModelVersion:
        files = conn.execute(
            select(files_table.c.path, files_table.c.sha256, files_table.c.size)
            .where(files_table.c.version_id == row.id)
            .order_by(files_table.c.path)
        )
        return ModelVersion(
            name=name,
            version=row.version,
            description=row.description,
            status=row.status,
            digest=row.digest,
            size=row.size,
            files=[FileEntry(path=p, sha256=s, size=z) for p, s, z in files],
            framework=row.framework,
            framework_version=row.framework_version,
            tags=row.tags or {},
            properties=row.properties or {},
            lineage=Lineage.model_validate(row.lineage or {}),
            aliases=sorted(aliases),
            created_at=_utc(row.created_at),
        )

    def list_models(self) -> list[RegisteredModel]:
        """Every model in three queries (models, version counts, aliases), not three per model."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(models_table).order_by(models_table.c.name)).all()
            counts = {
                model_id: (count, latest)
                for model_id, count, latest in conn.execute(
                    select(versions_table.c.model_id, func.count(), func.max(versions_table.c.version))
                    .where(versions_table.c.status == "ready")
                    .group_by(versions_table.c.model_id)
                )
            }
            aliases: dict[int, list[Alias]] = {}
            for model_id, alias, version, protected, updated_at in conn.execute(
                select(
                    aliases_table.c.model_id,
                    aliases_table.c.name,
                    versions_table.c.version,
                    aliases_table.c.protected,
                    aliases_table.c.updated_at,
                )
                .join(versions_table, versions_table.c.id == aliases_table.c.version_id)
                .order_by(aliases_table.c.name)
            ):
                aliases.setdefault(model_id, []).append(
                    Alias(name=alias, version=version, protected=protected, updated_at=_utc(updated_at))
                )
        return [self._registered(row, counts.get(row.id, (0, None)), aliases.get(row.id, [])) for row in rows]

    def get_model(self, name: str) -> RegisteredModel:
        with self.engine.connect() as conn:
            return self._model_record(conn, name)

    def _model_record(self, conn: Connection, name: str) -> RegisteredModel:
        row = self._require_model(conn, name)
        versions = conn.execute(
            select(func.count(), func.max(versions_table.c.version)).where(
                versions_table.c.model_id == row.id, versions_table.c.status == "ready"
            )
        ).one()
        alias_rows = conn.execute(
            select(
                aliases_table.c.name, versions_table.c.version, aliases_table.c.protected, aliases_table.c.updated_at
            )
            .join(versions_table, versions_table.c.id == aliases_table.c.version_id)
            .where(aliases_table.c.model_id == row.id)
            .order_by(aliases_table.c.name)
        )
        return self._registered(
            row,
            (versions[0], versions[1]),
            [Alias(name=a, version=v, protected=p, updated_at=_utc(t)) for a, v, p, t in alias_rows],
        )

    @staticmethod
    def _registered(row: Any, versions: tuple[int, int | None], aliases: list[Alias]) -> RegisteredModel:
        return RegisteredModel(
            name=row.name,
            description=row.description,
            tags=row.tags or {},
            latest_version=versions[1],
            version_count=versions[0],
            aliases=aliases,
            created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at),
        )

    def list_versions(self, name: str, include_archived: bool = False) -> list[ModelVersion]:
        with self.engine.connect() as conn:
            model = self._require_model(conn, name)
            query = select(versions_table).where(versions_table.c.model_id == model.id)
            if not include_archived:
                query = query.where(versions_table.c.status == "ready")
            aliases = self._aliases_by_version(conn, model.id)
            rows = conn.execute(query.order_by(versions_table.c.version)).all()
            return [self._version_record(conn, model.name, r, aliases.get(r.id, [])) for r in rows]

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self.engine.connect() as conn:
            model = self._require_model(conn, name)
            row = self._version_row(conn, model, version)
            return self._version_record(conn, model.name, row, self._aliases_by_version(conn, model.id).get(row.id, []))

    def _version_row(self, conn: Connection, model: Any, version: int) -> Any:
        check_version(version)
        row = conn.execute(
            select(versions_table).where(versions_table.c.model_id == model.id, versions_table.c.version == version)
        ).first()
        if row is None:
            raise NotFound(f"version {model.name}:{version} not found")
        return row

    def resolve(self, ref: ModelRef) -> ModelVersion:
        """The version a reference points at: exact, through an alias, or the latest ready one."""
        with self.engine.connect() as conn:
            model = self._require_model(conn, ref.name)
            if ref.version is not None:
                row = self._version_row(conn, model, ref.version)
            elif ref.alias is not None:
                row = conn.execute(
                    select(versions_table)
                    .join(aliases_table, aliases_table.c.version_id == versions_table.c.id)
                    .where(aliases_table.c.model_id == model.id, aliases_table.c.name == ref.alias)
                ).first()
                if row is None:
                    raise NotFound(f"alias {ref} not found")
            else:
                row = conn.execute(
                    select(versions_table)
                    .where(versions_table.c.model_id == model.id, versions_table.c.status == "ready")
                    .order_by(versions_table.c.version.desc())
                    .limit(1)
                ).first()
                if row is None:
                    raise NotFound(f"model {ref.name!r} has no versions")
            aliases = self._aliases_by_version(conn, model.id).get(row.id, [])
            return self._version_record(conn, model.name, row, aliases)

    # ---- writing ----------------------------------------------------------------------------

    def create_version(self, name: str, new: NewVersion, digest: str, blobs_stored: Check = None) -> ModelVersion:
        """Insert a version whose blobs are stored (``blobs_stored`` checks, under the blob lock gc deletes
        under: no version is made of a blob gc just removed); allocates the next version number."""
        check_name(name)
        for alias in new.aliases:
            check_alias(alias)
        for key in [*new.tags, *new.properties]:
            check_tag_key(key)
        for attempt in range(5):
            try:
                return self._create_version(name, new, digest, blobs_stored)
            except IntegrityError:
                # Two processes created the same new model at once on PostgreSQL: the loser retries.
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _create_version(self, name: str, new: NewVersion, digest: str, blobs_stored: Check) -> ModelVersion:
        stamp = now()
        with self._tx() as conn:
            hold_blob_lock(conn, then=blobs_stored)
            model = self._model_row(conn, name, lock=True)
            if model is None:
                conn.execute(
                    insert(models_table).values(
                        name=name,
                        description=new.model_description or "",
                        tags={},
                        next_version=1,
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
                model = self._model_row(conn, name, lock=True)
            version = model.next_version
            values: dict[str, Any] = {"next_version": version + 1, "updated_at": stamp}
            if new.model_description is not None:
                values["description"] = new.model_description
            conn.execute(update(models_table).where(models_table.c.id == model.id).values(**values))
            inserted = conn.execute(
                insert(versions_table).values(
                    model_id=model.id,
                    version=version,
                    description=new.description,
                    status="ready",
                    digest=digest,
                    size=sum(f.size for f in new.files),
                    framework=new.framework,
                    framework_version=new.framework_version,
                    tags=new.tags,
                    properties=new.properties,
                    lineage=new.lineage.model_dump(),
                    created_at=stamp,
                )
            ).inserted_primary_key
            assert inserted is not None  # a single-row INSERT always knows its key
            version_id = inserted[0]
            conn.execute(
                insert(files_table),
                [{"version_id": version_id, "path": f.path, "sha256": f.sha256, "size": f.size} for f in new.files],
            )
            record(conn, self.actor, "version.created", name, f"{name}:{version}", after={"digest": digest})
            row = self._version_row(conn, model, version)
            for alias in new.aliases:
                self._move_alias(conn, model, alias, row, force=False, protect=None)
            return self._version_record(conn, name, row, list(new.aliases))

    @staticmethod
    def _alias_row(conn: Connection, model: Any, alias: str) -> Any:
        """The alias with the number of the version it points at (None: no such alias)."""
        return conn.execute(
            select(aliases_table, versions_table.c.version)
            .join(versions_table, versions_table.c.id == aliases_table.c.version_id)
            .where(aliases_table.c.model_id == model.id, aliases_table.c.name == alias)
        ).first()

    def _move_alias(
        self, conn: Connection, model: Any, alias: str, row: Any, force: bool, protect: bool | None
    ) -> None:
        existing, version_id = self._alias_row(conn, model, alias), row.id
        record_alias_move(conn, self.actor, model.name, alias, existing, row.version, protect)
        if existing is None:
            conn.execute(
                insert(aliases_table).values(
                    model_id=model.id, name=alias, version_id=version_id, protected=bool(protect), updated_at=now()
                )
            )
            return
        if existing.protected and not force and existing.version_id != version_id:
            raise Conflict(f"alias {model.name}@{alias} is protected: moving it needs --force")
        values: dict[str, Any] = {"version_id": version_id, "updated_at": now()}
        if protect is not None:
            values["protected"] = protect
        conn.execute(update(aliases_table).where(aliases_table.c.id == existing.id).values(**values))

    def set_alias(self, name: str, alias: str, version: int, force: bool = False, protect: bool | None = None) -> Alias:
        check_alias(alias)
        with self._tx() as conn:
            model = self._require_model(conn, name, lock=True)
            row = self._version_row(conn, model, version)
            if row.status != "ready":
                raise Conflict(f"version {name}:{version} is archived; an alias cannot point at it")
            self._move_alias(conn, model, alias, row, force, protect)
            stored = conn.execute(
                select(aliases_table).where(aliases_table.c.model_id == model.id, aliases_table.c.name == alias)
            ).one()
            return Alias(name=alias, version=version, protected=stored.protected, updated_at=_utc(stored.updated_at))

    def delete_alias(self, name: str, alias: str, force: bool = False) -> int:
        """Remove an alias; returns the version it pointed at."""
        check_alias(alias)
        with self._tx() as conn:
            model = self._require_model(conn, name, lock=True)
            existing = self._alias_row(conn, model, alias)
            if existing is None:
                raise NotFound(f"alias {name}@{alias} not found")
            if existing.protected and not force:
                raise Conflict(f"alias {name}@{alias} is protected: deleting it needs --force")
            conn.execute(delete(aliases_table).where(aliases_table.c.id == existing.id))
            before = {"version": existing.version, "protected": existing.protected}
            record(conn, self.actor, "alias.deleted", name, f"{name}@{alias}", before=before)
            return existing.version

    def set_tags(self, name: str, version: int | None, set_tags: dict[str, str], unset: list[str]) -> dict[str, str]:
        """Change the tags of a model (version None) or of one version; returns the new tags."""
        for key in [*set_tags, *unset]:
            check_tag_key(key)
        with self._tx() as conn:
            model = self._require_model(conn, name, lock=True)
            row = self._version_row(conn, model, version) if version is not None else None
            before = dict((model.tags if row is None else row.tags) or {})
            tags = {key: value for key, value in {**before, **set_tags}.items() if key not in unset}
            action, refused = signing_policy.judge(self.actor, name, before, tags, of_version=row is not None)
            if before != tags:
                target = name if row is None else f"{name}:{version}"
                record(conn, self.actor, action, name, target, *changed_keys(before, tags))
            if refused is None:
                table, key = (models_table, model.id) if row is None else (versions_table, row.id)
                stamp = {"updated_at": now()} if row is None else {}
                conn.execute(update(table).where(table.c.id == key).values(tags=tags, **stamp))
        if refused is not None:
            raise Forbidden(refused)  # the refusal is recorded: the transaction above committed it
        return tags

    def _refuse_if_aliased(self, conn: Connection, model: Any, row: Any, action: str) -> None:
        aliases = self._aliases_by_version(conn, model.id).get(row.id, [])
        if aliases:
            names = ", ".join(f"@{a}" for a in sorted(aliases))
            raise Conflict(f"cannot {action} {model.name}:{row.version}: aliases point at it ({names})")

    def archive_version(self, name: str, version: int) -> ModelVersion:
        with self._tx() as conn:
            model = self._require_model(conn, name, lock=True)
            row = self._version_row(conn, model, version)
            self._refuse_if_aliased(conn, model, row, "archive")
            conn.execute(update(versions_table).where(versions_table.c.id == row.id).values(status="archived"))
            record(conn, self.actor, "version.archived", name, f"{name}:{version}", before={"digest": row.digest})
        return self.get_version(name, version)

    def delete_version(self, name: str, version: int) -> ModelVersion:
        """Remove a version's metadata (its blobs stay until no version uses them)."""
        deleted = self.get_version(name, version)
        with self._tx() as conn:
            model = self._require_model(conn, name, lock=True)
            row = self._version_row(conn, model, version)
            self._refuse_if_aliased(conn, model, row, "delete")
            conn.execute(delete(files_table).where(files_table.c.version_id == row.id))
            conn.execute(delete(versions_table).where(versions_table.c.id == row.id))
            record(conn, self.actor, "version.deleted", name, f"{name}:{version}", before={"digest": row.digest})
        return deleted
