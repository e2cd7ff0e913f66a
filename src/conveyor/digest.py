"""The one digest of a model version: sha256 over its sorted (path, file sha256) pairs.

Kept free of heavy imports: the model server inside an image uses it to check
its model files at start-up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_of_pairs(pairs: Iterable[tuple[str, str]]) -> str:
    lines = sorted(f"{path}\t{sha}\n" for path, sha in pairs)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def folder_digest(folder: Path) -> str:
    """The version digest of every file under ``folder`` (paths relative, forward slashes)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return digest_of_pairs((p.relative_to(folder).as_posix(), sha256_of(p)) for p in files)
