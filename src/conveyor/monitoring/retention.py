"""Retention: how much of a payload log (and its summaries) is kept, by age and by size.

A log written for months grows without end: a server logging 10% of 100 requests a second writes
gigabytes a week.  ``Retention`` is the one declaration of the limits (``conveyor monitor``'s
``--keep-days``/``--keep-mib`` and the same keys wherever it is embedded): finished files whose
last write is older than ``keep_days`` are removed, then the oldest finished files until the rest
fit in ``keep_mib``.  A summary lives as long as its file (``monitoring/summaries.py`` removes the
summary of a file that is gone), so the store is bounded by the same limits.  Files still being
written (``.partial``) are never touched.  An S3 log is bounded by the bucket's own lifecycle
rules (an expiration on the prefix), which need no process running; its local summaries follow.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from conveyor.errors import InvalidInput
from conveyor.monitoring.logs import _order
from conveyor.monitoring.summaries import SummaryStore


class Retention(BaseModel):
    """How long and how much of a payload log is kept (none given: all of it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_days: float | None = Field(
        default=None, gt=0, description="Remove finished payload log files (and their summaries) older than this."
    )
    keep_mib: float | None = Field(
        default=None, gt=0, description="Then remove the oldest finished files until the log fits in this many MiB."
    )

    @property
    def bounded(self) -> bool:
        return self.keep_days is not None or self.keep_mib is not None


def apply_retention(store: SummaryStore, retention: Retention, now: float | None = None) -> list[str]:
    """Remove what ``retention`` does not keep of ``store``'s log; the names of the files removed."""
    if not retention.bounded:
        return []
    if store.log_folder is None:
        raise InvalidInput(
            "retention of an S3 payload log is the bucket's lifecycle rule (an expiration on the prefix), "
            "not --keep-days/--keep-mib"
        )
    now = time.time() if now is None else now
    files = sorted(store.log_folder.glob("payloads-*.jsonl"), key=lambda p: _order(p.name))
    removed: list[str] = []
    kept: list[tuple[Path, int]] = []
    for path in files:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if retention.keep_days is not None and now - stat.st_mtime > retention.keep_days * 86400:
            removed.append(_remove(path))
        else:
            kept.append((path, stat.st_size))
    if retention.keep_mib is not None:
        total, limit = sum(size for _, size in kept), retention.keep_mib * 1024 * 1024
        for path, size in kept:  # oldest first
            if total <= limit:
                break
            removed.append(_remove(path))
            total -= size
    store.prune({p.name for p in files} - set(removed))
    return removed


def _remove(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return path.name
