"""A content-addressed cache of the reference model's expensive, deterministic results.

Embedding the training texts and scoring the held-out split through the exported graph are
nearly all of a build's time, and both are pure functions of their inputs' bytes: the same
texts, encoder files and code give the same embeddings; the same model files, split and code
give the same accuracy.  ``make model``, the training pipeline's steps and a retrain share
them through this folder, keyed by a digest of everything the result depends on.

Two processes that miss the same key at once (two test workers, a pipeline beside a build)
would compute it twice; a lock per key makes the second wait and read the first one's result.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from conveyor.atomic import write_atomic
from conveyor.filelock import exclusive

CACHE_DIR = Path(
    os.environ.get("CONVEYOR_EMBEDDING_CACHE") or Path(__file__).resolve().parents[2] / "data" / "embeddings"
)

T = TypeVar("T")


def files_digest(digest: hashlib._Hash, paths: Iterable[Path]) -> hashlib._Hash:
    """Fold each file's name and bytes into ``digest``, in sorted order (folders are skipped)."""
    for path in sorted(paths):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest


def locked(path: Path) -> AbstractContextManager[None]:
    """Hold an exclusive lock named after ``path`` (PATH.lock beside it) until the block ends."""
    return exclusive(path.with_name(path.name + ".lock"))


def cached(name: str, compute: Callable[[], T], dump: Callable[[T], bytes], load: Callable[[bytes], T]) -> T:
    """``compute()``'s result stored as CACHE_DIR/NAME; computed once, whoever asks first."""
    path = CACHE_DIR / name
    with locked(path):
        if path.is_file():
            return load(path.read_bytes())
        result = compute()
        write_atomic(path, dump(result))
        return result
