"""Retention: how much of a payload log (and its summaries) is kept, by age and by size.

A log written for months grows without end: a server logging 10% of 100 requests a second writes
gigabytes a week.  ``Retention`` is the one declaration of the limits: the payload log's settings
(``conveyor serve``/``conveyor router`` ``--log-keep-days``/``--log-keep-mib``, their variables and
conveyor.yaml keys: the writer applies them each time a file rotates) and ``conveyor monitor``'s
options of the same names (applied before judging) derive from it.  Finished files whose last
write is older than ``log_keep_days`` are removed, then the oldest finished files until the rest
fit in ``log_keep_mib``.  A summary lives as long as its file (``monitoring/summaries.py`` removes the
summary of a file that is gone), so the store is bounded by the same limits.  Files still being
written (``.partial``) are never touched.  An S3 log is bounded by the bucket's own lifecycle
rules (an expiration on the prefix), which need no process running; its local summaries follow.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor.monitoring.summaries import SummaryStore

SUMMARIES = ".summaries"  # monitoring.summaries.FOLDER (not imported: a server applies retention too)


class Retention(BaseModel):
    """How long and how much of a payload log is kept (none given: all of it)."""

    log_keep_days: float | None = Field(
        default=None,
        gt=0,
        description="Remove finished payload log files (and their summaries) older than this many days.",
    )
    log_keep_mib: float | None = Field(
        default=None, gt=0, description="... then the oldest finished files until the log fits in this many MiB."
    )

    @property
    def bounded(self) -> bool:
        return self.log_keep_days is not None or self.log_keep_mib is not None

    def retention(self) -> Retention:
        """These limits alone (for a settings model that embeds them)."""
        return Retention(log_keep_days=self.log_keep_days, log_keep_mib=self.log_keep_mib)


def apply_retention(store: SummaryStore, retention: Retention, now: float | None = None) -> list[str]:
    """Remove what ``retention`` does not keep of ``store``'s log, and the summaries of what is gone;
    the names of the files removed."""
    if not retention.bounded:
        return []
    if store.log_folder is None:
        raise InvalidInput(
            "retention of an S3 payload log is the bucket's lifecycle rule (an expiration on the prefix), "
            "not --log-keep-days/--log-keep-mib"
        )
    removed = expire(store.log_folder, retention, now)
    store.prune({p.name for p in store.log_folder.glob("payloads-*.jsonl")})
    return removed


def expire(folder: Path, retention: Retention, now: float | None = None) -> list[str]:
    """Remove the finished files of one version's log folder that ``retention`` does not keep (and
    their summaries beside them); the names removed, oldest first."""
    from conveyor.monitoring.logs import _order

    now = time.time() if now is None else now
    files = sorted(folder.glob("payloads-*.jsonl"), key=lambda p: _order(p.name))
    removed: list[str] = []
    kept: list[tuple[Path, int]] = []
    for path in files:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if retention.log_keep_days is not None and now - stat.st_mtime > retention.log_keep_days * 86400:
            removed.append(_remove(path))
        else:
            kept.append((path, stat.st_size))
    if retention.log_keep_mib is not None:
        total, limit = sum(size for _, size in kept), retention.log_keep_mib * 1024 * 1024
        for path, size in kept:  # oldest first
            if total <= limit:
                break
            removed.append(_remove(path))
            total -= size
    return removed


def _remove(path: Path) -> str:
    for gone in (path, path.parent / SUMMARIES / f"{path.name}.json"):
        with contextlib.suppress(FileNotFoundError):
            gone.unlink()
    return path.name
