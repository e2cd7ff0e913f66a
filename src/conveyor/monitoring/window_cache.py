"""Judged windows, kept: a window whose evidence has not changed is not judged again.

Judging a window costs its tests (KS, chi-square, an embedding test that embeds up to 500 texts),
its quality's bootstrap intervals and its estimate; a month of hourly windows is 720 of them, and
``conveyor monitor``, the drift trigger and every dashboard view asked for them all again.  Each
judged window is kept in the summary store (``windows/<key>.json``), keyed by the sha256 of
everything its verdict depends on: the reference profile as judged (after ``--log-hash`` and
embedding choices), the thresholds, the window's requests (each file's identity and the range
of its requests), its unsampled answers, and the feedback that has come for them.  New feedback
for a window, a new rotation that extends it, another profile or threshold: another key, judged
anew.  A kept window not used for ``UNUSED_DAYS`` is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from conveyor.atomic import write_atomic
from conveyor.monitoring.drift import ColumnDrift, WindowDrift

FOLDER = "windows"
UNUSED_DAYS = 14.0
TOUCH_AFTER_S = 86400.0  # a hit older than this is touched, so the pruning sees it used


def window_key(*evidence: Any) -> str:
    """The key of a window judged from ``evidence`` (JSON-serialisable parts, in a fixed order)."""
    return hashlib.sha256(orjson.dumps(evidence, option=orjson.OPT_SORT_KEYS)).hexdigest()


class WindowCache:
    """Judged windows in ``folder`` (the summary store's), by key."""

    def __init__(self, store: Path) -> None:
        self.folder = store / FOLDER
        self.hits = self.misses = 0

    def get(self, key: str, index: int) -> WindowDrift | None:
        path = self.folder / f"{key}.json"
        try:
            data = orjson.loads(path.read_bytes())
            window = WindowDrift(
                **{**data, "index": index, "columns": [ColumnDrift(**column) for column in data["columns"]]}
            )
        except (FileNotFoundError, orjson.JSONDecodeError, TypeError, KeyError):
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > TOUCH_AFTER_S:
                os.utime(path)
        return window

    def put(self, key: str, window: WindowDrift) -> None:
        with contextlib.suppress(OSError, TypeError):  # not kept: judged again next time
            data = orjson.dumps(asdict(window), option=orjson.OPT_SERIALIZE_NUMPY)
            write_atomic(self.folder / f"{key}.json", data, durable=False)  # a cache: judged again if lost

    def prune(self, now: float | None = None) -> None:
        """Remove the windows not used for ``UNUSED_DAYS``."""
        if not self.folder.is_dir():
            return
        now = time.time() if now is None else now
        for path in self.folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > UNUSED_DAYS * 86400:
                    path.unlink()
