"""Garbage collection of a blob store: what crashes and deletions leave behind, found and removed.

Two kinds of leftovers: temporary uploads (a registration or a registry server killed in the
middle of an upload) and blobs no version references (a registration killed after storing its
files, a deleted version).  ``conveyor registry gc`` lists them (a dry run) and, with
``--delete``, removes them while other writers run:

* a temporary upload goes once no process writes it (in a folder each upload holds a lock on
  its file while it is written, so an abandoned one is known at any age), or, where the store
  cannot tell (S3), once it is older than the grace period;
* an unreferenced blob goes only if it was neither written nor kept (a client that skips
  uploading a blob the store holds marks it in use) within the grace period, and only inside a
  transaction holding the registry's blob lock.  A version is created under the same lock,
  after checking that its blobs are there, so a version committed before gc took the lock is in
  the references gc reads under it, and one committed after finds any blob gc removed missing
  and is refused rather than made broken.  A blob a writer starts to reuse while gc removes it
  is put back or stored again (``LocalBlobStore.remove_blob``).

The registry server runs the uploads' half at start (``remove_abandoned_uploads``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select

from conveyor.registry.blobs import BlobStore, Stored
from conveyor.registry.schema import files_table, hold_blob_lock
from conveyor.registry.sql import SqlStore

DEFAULT_GRACE = 3600.0  # seconds: longer than any registration takes between storing a file and its version


@dataclass(frozen=True)
class Leftover:
    """A temporary upload or an unreferenced blob: its name (a digest for a blob), size and age in seconds."""

    kind: Literal["upload", "blob"]
    name: str
    size: int
    age: float


@dataclass
class GcReport:
    """What gc found; ``deleted`` when it removed them (a blob a writer took back meanwhile is left out).
    ``spared``: the unreferenced blobs kept because they were written or used within the grace period
    (a registration in progress, or one killed minutes ago), so a dry run that frees nothing says why."""

    grace: float
    deleted: bool
    leftovers: list[Leftover] = field(default_factory=list)
    spared: list[Leftover] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.leftovers)

    def as_json(self) -> dict[str, object]:
        return {
            "deleted": self.deleted,
            "grace_seconds": self.grace,
            "bytes": self.size,
            "leftovers": [item.__dict__ for item in self.leftovers],
            "spared": [item.__dict__ for item in self.spared],
        }


def collect_garbage(
    store: SqlStore,
    blobs: BlobStore,
    grace: float = DEFAULT_GRACE,
    delete: bool = False,
    clock: Callable[[], float] = time.time,
) -> GcReport:
    """Find (and with ``delete`` remove) abandoned temporary uploads and blobs no version references."""
    now = clock()
    cutoff = now - grace
    report = GcReport(grace=grace, deleted=delete)
    report.leftovers += [_leftover("upload", item, now) for item in _stale_uploads(blobs, cutoff, delete)]
    # listed before the lock: a blob stored after this is too young to be a candidate anyway
    stored = list(blobs.blobs())
    candidates = [item for item in stored if item.modified < cutoff]
    referenced = _referenced(store)  # outside the lock: for the dry run and the young ones, which stay anyway
    report.spared = [
        _leftover("blob", item, now) for item in stored if item.modified >= cutoff and item.name not in referenced
    ]
    if not candidates:
        return report
    if not delete:
        report.leftovers += [_leftover("blob", item, now) for item in candidates if item.name not in referenced]
        return report
    with store.engine.begin() as conn:  # no version is made until the block ends
        hold_blob_lock(conn, alone=True)
        referenced = {row[0] for row in conn.execute(select(files_table.c.sha256).distinct())}
        for item in candidates:
            if item.name not in referenced and blobs.remove_blob(item.name, cutoff):
                report.leftovers.append(_leftover("blob", item, now))
    return report


def remove_abandoned_uploads(blobs: BlobStore, grace: float = DEFAULT_GRACE) -> int:
    """Remove the temporary uploads no process writes any more (a server killed mid-upload): how many."""
    return len(_stale_uploads(blobs, time.time() - grace, delete=True))


def _stale_uploads(blobs: BlobStore, cutoff: float, delete: bool) -> list[Stored]:
    stale = [item for item in blobs.uploads() if item.abandoned or (item.abandoned is None and item.modified < cutoff)]
    if delete:
        for item in stale:
            blobs.remove_upload(item.name)
    return stale


def _referenced(store: SqlStore) -> set[str]:
    with store.engine.connect() as conn:
        return {row[0] for row in conn.execute(select(files_table.c.sha256).distinct())}


def _leftover(kind: Literal["upload", "blob"], item: Stored, now: float) -> Leftover:
    return Leftover(kind=kind, name=item.name, size=item.size, age=max(0.0, now - item.modified))
