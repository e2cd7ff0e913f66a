"""The embedded registry: metadata in a SQL store, files in a blob store, events to webhooks and hooks.

Its changes are audited as done by its ``actor``: the local owner, or (``acting_as``) the token
the registry server authenticated for one request.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from conveyor.errors import Conflict, InvalidInput
from conveyor.registry.access import TokenStore, WebhookStore
from conveyor.registry.audit import Actor, AuditLog
from conveyor.registry.base import Progress, RegistryBase, cache_version, version_digest
from conveyor.registry.blobs import BlobCorrupt, BlobStore, LocalBlobStore, file_chunks, hash_chunks
from conveyor.registry.events import EventDispatcher, Follower, make_event
from conveyor.registry.records import Alias, FileEntry, ModelVersion, NewVersion, RegisteredModel
from conveyor.registry.refs import ModelRef, check_file_name, parse_ref
from conveyor.registry.sql import SqlStore
from conveyor.registry.storage_errors import NOTHING_CHANGED, NOTHING_REGISTERED, outcome


class LocalRegistry(RegistryBase):
    """Registry operations over a SQL store and a blob store (the embedded default, and the server's core)."""

    def __init__(
        self,
        store: SqlStore,
        blobs: BlobStore,
        hooks_dir: Path | None = None,
        cache_dir: Path | None = None,
        followers: Sequence[tuple[str, Follower]] = (),
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.tokens = TokenStore(store.engine, store.actor)
        self.webhooks = WebhookStore(store.engine, store.actor)
        self.audit = AuditLog(store.engine)
        self.events = EventDispatcher(self.webhooks.all, hooks_dir, followers=followers)
        self.cache_dir = cache_dir
        self.location = store.url

    @property
    def actor(self) -> Actor:
        return self.store.actor

    def acting_as(self, actor: Actor) -> LocalRegistry:
        """This registry (the same database, blobs and webhooks) with its changes done, and audited, as ``actor``."""
        acting = copy.copy(self)
        acting.store = self.store.acting_as(actor)
        acting.tokens = TokenStore(self.store.engine, actor)
        acting.webhooks = WebhookStore(self.store.engine, actor)
        return acting

    def blob_exists(self, digest: str) -> bool:
        return self.blobs.exists(digest)

    def store_blob(self, digest: str, local: Path, size: int, progress: Progress) -> None:
        self.blobs.put(digest, file_chunks(local, progress.advance))

    def ingest_files(self, files: list[tuple[str, Path]], name: str, progress: Progress) -> list[FileEntry]:
        """Store each file while hashing it (one read, not a hash pass and then a copy) when the blobs
        are local files; other stores (S3) hash first, so a blob already there is not sent again."""
        if not isinstance(self.blobs, LocalBlobStore):
            entries = self._hash_files(files, name, progress)
            self._store_missing(entries, files, name, progress)
            return entries
        progress.start(f"storing {name}", sum(local.stat().st_size for _, local in files))
        entries = []
        for relative, local in files:
            digest, size = self.blobs.ingest(local, progress.advance)
            entries.append(FileEntry(path=relative, sha256=digest, size=size))
        return entries

    def create_version(self, name: str, new: NewVersion) -> ModelVersion:
        """Make a version from blobs already stored (the HTTP server's second upload step)."""
        paths = [check_file_name(f.path) for f in new.files]
        if len(set(paths)) != len(paths):
            raise InvalidInput("a version cannot hold the same file path twice")

        def blobs_stored() -> None:  # checked under the lock gc deletes under
            for entry in new.files:
                if not self.blobs.exists(entry.sha256):
                    raise Conflict(f"blob sha256:{entry.sha256} for {entry.path} has not been uploaded")

        with outcome(NOTHING_REGISTERED):
            version = self.store.create_version(name, new, version_digest(new.files), blobs_stored)
        self.events.emit(make_event("model_version.created", name, version.version, digest=version.digest), version)
        for alias in new.aliases:
            moved = make_event("alias.moved", name, version.version, alias=alias, digest=version.digest)
            self.events.emit(moved, version)
        return version

    # ---- reading ----------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModel]:
        return self.store.list_models()

    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_model(name)

    def list_versions(self, name: str, include_archived: bool = False) -> list[ModelVersion]:
        return self.store.list_versions(name, include_archived)

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        return self.store.resolve(parse_ref(ref) if isinstance(ref, str) else ref)

    def open_blob(self, digest: str) -> Iterable[bytes]:
        return self.blobs.get(digest)

    def cached(
        self, ref: str | ModelRef, progress: Progress | None = None, on_notice: Callable[[str], None] | None = None
    ) -> tuple[ModelVersion, Path]:
        """The verified cached copy, once the stored blobs on this machine hash to their digests too.

        The embedded registry's blobs lie on this disk, so checking them costs one read: a byte
        flipped in the store is refused by ``serve`` and rollouts even while an older copy in the
        cache is intact (the HTTP client, and blobs in S3, trust the cache, re-hashed, instead).
        On a cache miss the download itself hashes the stored bytes: they are read once."""
        version = self.resolve(ref)

        def stored_blobs_intact() -> None:
            for entry in version.files:
                actual = hash_chunks(self.blobs.get(entry.sha256))
                if actual != entry.sha256:
                    raise BlobCorrupt(
                        f"{entry.path}: the stored blob of {version.ref} hashes to sha256:{actual}, "
                        f"but the registry recorded sha256:{entry.sha256}; the stored blob is corrupt"
                    )

        local_files = isinstance(self.blobs, LocalBlobStore)  # blobs in S3 cost a download: the cache stands
        check = stored_blobs_intact if local_files else None
        return version, cache_version(version, self.open_blob, self.cache_dir, progress, on_notice, check)

    # ---- changing ---------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, force: bool = False, protect: bool | None = None) -> Alias:
        with outcome(NOTHING_CHANGED):
            result = self.store.set_alias(name, alias, version, force, protect)
        moved = self.store.get_version(name, version)
        self.events.emit(make_event("alias.moved", name, version, alias=alias, digest=moved.digest), moved)
        return result

    def delete_alias(self, name: str, alias: str, force: bool = False) -> int:
        with outcome(NOTHING_CHANGED):
            version = self.store.delete_alias(name, alias, force)
        self.events.emit(make_event("alias.deleted", name, version, alias=alias))
        return version

    def set_tags(self, name: str, version: int | None, set_tags: dict[str, str], unset: list[str]) -> dict[str, str]:
        with outcome(NOTHING_CHANGED):
            tags = self.store.set_tags(name, version, set_tags, unset)
        if version is not None and set_tags:
            tagged = self.store.get_version(name, version)
            self.events.emit(make_event("version.tagged", name, version, digest=tagged.digest, tags=set_tags), tagged)
        return tags

    def archive_version(self, name: str, version: int) -> ModelVersion:
        with outcome(NOTHING_CHANGED):
            return self.store.archive_version(name, version)

    def delete_version(self, name: str, version: int) -> ModelVersion:
        with outcome(NOTHING_CHANGED):
            return self.store.delete_version(name, version)
