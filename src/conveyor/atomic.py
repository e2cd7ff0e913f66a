"""One way to write a state file: all of it or none of it, even if the process dies mid-write.

Route tables, rollout status records, run records and decisions are rewritten while other
processes read them; a reader must see the previous content or the new one, never half.  The
data goes to a temporary file in the same folder, is flushed to disk, and replaces the target
in one rename; a failure removes the temporary file.  A cache that can be rebuilt (monitoring's
summaries and kept windows) skips the flush (``durable=False``): after a power loss its file may
be empty, which its reader takes as missing, and hundreds of flushes cost seconds of waiting.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _written_beside(path: Path, data: bytes | str, durable: bool = True) -> str:
    """A temporary file in ``path``'s folder holding ``data``, flushed to disk (``durable``); its name."""
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: Path, data: bytes | str, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (its folder is created when missing); ``durable``:
    flushed to disk first (a rebuildable cache passes False)."""
    tmp = _written_beside(path, data, durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def create_exclusive(path: Path, data: bytes | str) -> bool:
    """Write ``path`` only if it does not exist yet (False when another writer got there first)."""
    tmp = _written_beside(path, data)
    try:
        os.link(tmp, path)  # fails if the target exists: the first writer wins
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
