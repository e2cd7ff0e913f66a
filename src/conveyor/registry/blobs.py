"""Content-addressed blob stores: the interface, and a local directory (S3: ``s3_blobs.py``).

A blob's key is its sha256.  Writes go to a temporary name and are hashed as
they stream; only a blob whose bytes match its digest is moved to its final
key, so a crash mid-upload never leaves a corrupt blob under a real digest,
and identical files are stored once.  What a crash does leave (a temporary upload, a
blob no version came to reference) is listed and removed by ``registry/gc.py``; a full or
read-only disk is ``StorageFull`` or ``StorageUnavailable`` naming the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from conveyor.digest import CHUNK
from conveyor.errors import ConveyorError, InvalidInput, NotFound
from conveyor.filelock import held_elsewhere
from conveyor.registry.storage_errors import disk_errors

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")

Progress = Callable[[int], None]


# an upload's temporary file is locked right after it is made: an empty one younger than this may not be yet
UPLOAD_BIRTH = 10.0
ASIDE = "gc-"  # the prefix of a blob gc is removing, in tmp/ for an instant


@dataclass(frozen=True)
class Stored:
    """A stored blob (``name`` its digest) or temporary upload, as gc lists them.

    ``modified``: the last time it was written or kept (epoch seconds); ``abandoned``: no process
    writes it any more (local uploads), None where the store cannot tell (S3: age decides)."""

    name: str
    size: int
    modified: float
    abandoned: bool | None = None


class BlobCorrupt(ConveyorError):
    """Stored or received bytes do not match their sha256."""


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise InvalidInput(f"invalid sha256 digest {digest!r}: expected 64 lowercase hex characters")
    return digest


def file_chunks(path: Path, progress: Progress | None = None) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            if progress:
                progress(len(chunk))
            yield chunk


def hash_chunks(chunks: Iterable[bytes]) -> str:
    """The sha256 of a stream of chunks."""
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


class BlobStore(Protocol):
    """Where version files live, keyed by sha256."""

    url: str

    def exists(self, digest: str) -> bool: ...

    def put(self, digest: str, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` under ``digest``; raises BlobCorrupt if they hash differently. Returns the size."""
        ...

    def get(self, digest: str) -> Iterator[bytes]: ...

    def size(self, digest: str) -> int: ...

    def keep(self, digest: str) -> bool:
        """Whether the blob is stored; marks it in use now where the store can (a client skips its upload)."""
        ...

    def blobs(self) -> Iterator[Stored]:
        """Every stored blob."""
        ...

    def uploads(self) -> Iterator[Stored]:
        """Every temporary upload (complete or not)."""
        ...

    def remove_upload(self, name: str) -> None: ...

    def remove_blob(self, digest: str, unless_used_since: float) -> bool:
        """Delete a blob unless it was written or kept since that time; whether it was deleted."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root/sha256/ab/abcdef...``; uploads in progress under ``root/tmp``.

    Each upload holds a lock on its temporary file while it is written, so ``uploads()`` can tell
    one a crash abandoned (no process holds it) from one still arriving, at any age."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        with disk_errors(self.root):
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def keep(self, digest: str) -> bool:
        """Whether the blob is stored, marking it in use now (gc spares it for its grace period)."""
        try:
            os.utime(self._path(digest))
        except FileNotFoundError:
            return False
        except OSError:  # a read-only store: nothing will collect it either
            return self.exists(digest)
        return True

    def size(self, digest: str) -> int:
        return self._path(digest).stat().st_size

    def put(self, digest: str, chunks: Iterable[bytes]) -> int:
        final = self._path(digest)

        def settle(tmp_name: str, actual: str) -> None:
            mismatch = None if actual == digest else f"sha256:{actual}, expected sha256:{digest}"
            self._settle(tmp_name, final, mismatch)

        with disk_errors(self.root):
            return write_hashed(chunks, self.root / "tmp", "upload-", fsync=True, then=settle)[2]

    @staticmethod
    def _settle(tmp_name: str, final: Path, mismatch: str | None) -> None:
        """Move a complete, synced upload to its digest (or drop it: a mismatch, or the blob is there).

        A blob already there is kept and marked in use now; if gc took it away in between, the
        upload takes its place."""
        try:
            if mismatch is not None:
                raise BlobCorrupt(f"received bytes hash to {mismatch}")
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.utime(final)  # stored once: the identical blob is already there
            except FileNotFoundError:
                os.replace(tmp_name, final)
            else:
                os.unlink(tmp_name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def get(self, digest: str) -> Iterator[bytes]:
        path = self._path(digest)
        if not path.is_file():
            raise NotFound(f"blob sha256:{digest} not found in {self.url}")
        return file_chunks(path)

    def ingest(self, path: Path, progress: Progress | None = None) -> tuple[str, int]:
        """Copy a local file in while hashing it, in one read; (its sha256, size).

        The copy lands under a temporary name and moves to its digest only once complete and
        synced, so a crash leaves no blob under a wrong name; an identical blob already
        stored is kept and the copy dropped."""
        with disk_errors(self.root):
            _, digest, size = write_hashed(
                file_chunks(path),
                self.root / "tmp",
                "upload-",
                progress,
                fsync=True,
                then=lambda tmp_name, digest: self._settle(tmp_name, self._path(digest), None),
            )
        return digest, size

    # ---- what gc sees (registry/gc.py) ------------------------------------------------------

    def blobs(self) -> Iterator[Stored]:
        for path in (self.root / "sha256").glob("*/*"):
            with contextlib.suppress(FileNotFoundError):
                if DIGEST_RE.match(path.name):
                    stat = path.stat()
                    yield Stored(path.name, stat.st_size, stat.st_mtime)

    def uploads(self) -> Iterator[Stored]:
        for path in (self.root / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                size, modified = _size_and_time(path)
                yield Stored(path.name, size, modified, abandoned=_abandoned(path, size, modified))

    def remove_upload(self, name: str) -> None:
        with disk_errors(self.root), contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / "tmp" / Path(name).name)

    def remove_blob(self, digest: str, unless_used_since: float) -> bool:
        """Delete the blob unless a writer marked it in use since ``unless_used_since``; whether it went.

        It is first moved aside in one step, so a writer that looks for it now stores its own
        copy, and its time is read only then: a writer that kept it just before gets it back."""
        aside = self.root / "tmp" / f"{ASIDE}{digest}-{uuid.uuid4().hex[:8]}"
        with disk_errors(self.root):
            try:
                os.rename(self._path(digest), aside)
            except FileNotFoundError:
                return False
            if aside.stat().st_mtime > unless_used_since:
                os.replace(aside, self._path(digest))
                return False
            os.unlink(aside)
        return True


def _size_and_time(path: Path) -> tuple[int, float]:
    """An upload's size and last write; for a blob gc is moving aside, the move (it keeps the blob's old mtime)."""
    stat = path.stat()
    moved = stat.st_ctime if path.name.startswith(ASIDE) else 0.0
    return stat.st_size, max(stat.st_mtime, moved)


def _abandoned(path: Path, size: int, modified: float) -> bool:
    """No process holds the upload's lock.  Its writer locks it before the first byte, so only an empty
    file may be one made this very moment and not locked yet: that one must be older than UPLOAD_BIRTH."""
    if size == 0 and time.time() - modified < UPLOAD_BIRTH:
        return False
    with open(path, "rb") as handle:
        return not held_elsewhere(handle)


def write_hashed(
    chunks: Iterable[bytes],
    directory: Path,
    prefix: str,
    progress: Progress | None = None,
    fsync: bool = False,
    then: Callable[[str, str], None] | None = None,
) -> tuple[str, str, int]:
    """Write chunks to a new temporary file in ``directory``; returns (its path, sha256, size).

    ``then(path, sha256)`` runs while the file is still locked (gc leaves it alone): moving it into place."""
    hasher = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while written: gc and a starting server leave it alone
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                hasher.update(chunk)
                handle.write(chunk)
                size += len(chunk)
                if progress:
                    progress(len(chunk))
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
            if then is not None:
                then(tmp_name, hasher.hexdigest())
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return tmp_name, hasher.hexdigest(), size


def copy_verified(chunks: Iterable[bytes], dest: Path, digest: str, progress: Progress | None = None) -> int:
    """Write chunks to ``dest`` via a temporary file, failing loudly if they do not hash to ``digest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_name, actual, size = write_hashed(chunks, dest.parent, f".{dest.name}.", progress)
    if actual != digest:
        Path(tmp_name).unlink(missing_ok=True)
        raise BlobCorrupt(
            f"{dest.name}: downloaded bytes hash to sha256:{actual}, "
            f"but the registry recorded sha256:{digest}; the stored blob is corrupt"
        )
    os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; downloads get the usual file mode
    os.replace(tmp_name, dest)
    return size


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


__all__ = [
    "BlobCorrupt",
    "BlobStore",
    "LocalBlobStore",
    "Stored",
    "check_digest",
    "copy_verified",
]
