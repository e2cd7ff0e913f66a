"""One way to hold a lock across processes: an exclusive ``flock`` on a file, for a block.

Rollout status records, a shared wheelhouse and the reference model's result cache are each
used by several processes at once (a controller and the CLI, two builds, two test workers);
each needs "one at a time here" and nothing more, so each takes this lock on a file beside
what it guards.  The lock goes with the process: a killed holder never leaves it taken.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created, with its folder, when missing) until the block ends."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def held_elsewhere(handle: IO[Any]) -> bool:
    """Whether another process holds an exclusive lock on this open file (probed, never kept)."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(handle, fcntl.LOCK_UN)
    return False
