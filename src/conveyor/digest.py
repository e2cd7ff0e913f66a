"""The one digest of a model version: sha256 over its sorted (path, file sha256) pairs.

Kept free of heavy imports: the model server inside an image uses it to check
its model files at start-up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

CHUNK = 1024 * 1024


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """The sha256 and size of a file, read in 1 MiB chunks (``progress`` gets each chunk's size)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest(), size


def digest_of_pairs(pairs: Iterable[tuple[str, str]]) -> str:
    lines = sorted(f"{path}\t{sha}\n" for path, sha in pairs)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def folder_digest(folder: Path) -> str:
    """The version digest of every file under ``folder`` (paths relative, forward slashes)."""
    return digest_of_pairs(folder_pairs(folder))


def folder_pairs(folder: Path) -> list[tuple[str, str]]:
    """(path relative to ``folder``, sha256) of every file under it."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return [(p.relative_to(folder).as_posix(), sha256_file(p)[0]) for p in files]


def read_pairs(listing: Path) -> list[tuple[str, str]]:
    """The ``path<TAB>sha256`` lines of a listing (the files an image leaves out of its model folder)."""
    pairs = []
    for line in listing.read_text().splitlines():
        path, _, sha = line.partition("\t")
        if path and sha:
            pairs.append((path, sha))
    return pairs


def write_pairs(pairs: Iterable[tuple[str, str]], listing: Path) -> None:
    listing.write_text("".join(f"{path}\t{sha}\n" for path, sha in sorted(pairs)))
