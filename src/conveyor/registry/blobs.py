"""Content-addressed blob stores: a local directory, or S3-compatible object storage.

A blob's key is its sha256.  Writes go to a temporary name and are hashed as
they stream; only a blob whose bytes match its digest is moved to its final
key, so a crash mid-upload never leaves a corrupt blob under a real digest,
and identical files are stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from conveyor.digest import CHUNK
from conveyor.errors import ConveyorError, InvalidInput, NotFound
from conveyor.extras import needs

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")

Progress = Callable[[int], None]


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


class LocalBlobStore:
    """Blobs as files under ``root/sha256/ab/abcdef...``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def size(self, digest: str) -> int:
        return self._path(digest).stat().st_size

    def put(self, digest: str, chunks: Iterable[bytes]) -> int:
        final = self._path(digest)
        tmp_name, actual, size = write_hashed(chunks, self.root / "tmp", "upload-", fsync=True)
        self._settle(tmp_name, final, None if actual == digest else f"sha256:{actual}, expected sha256:{digest}")
        return size

    @staticmethod
    def _settle(tmp_name: str, final: Path, mismatch: str | None) -> None:
        """Move a complete, synced upload to its digest (or drop it: a mismatch, or the blob is there)."""
        try:
            if mismatch is not None:
                raise BlobCorrupt(f"received bytes hash to {mismatch}")
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                os.unlink(tmp_name)  # stored once: the identical blob is already there
            else:
                os.replace(tmp_name, final)
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
        tmp_name, digest, size = write_hashed(file_chunks(path), self.root / "tmp", "upload-", progress, fsync=True)
        self._settle(tmp_name, self._path(digest), None)
        return digest, size


class _HashingReader:
    """A file-like object over chunks that hashes what boto3 reads."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self.hasher = hashlib.sha256()
        self.size = 0

    def read(self, amount: int = -1) -> bytes:
        while amount < 0 or len(self._buffer) < amount:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if amount < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:amount], self._buffer[amount:]
        self.hasher.update(data)
        self.size += len(data)
        return data


class S3BlobStore:
    """Blobs as objects ``prefix/sha256/<digest>`` in an S3-compatible bucket (AWS S3, MinIO, ...).

    Uploads go to ``prefix/tmp/<uuid>`` (multipart, streamed), are verified,
    then copied to their final key: readers never see a partial blob.
    The endpoint comes from ``CONVEYOR_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``);
    credentials from boto3's usual chain.
    """

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        with needs("s3", "a registry on S3"):
            import boto3
            from boto3.s3.transfer import TransferConfig

        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConveyorError(f"invalid S3 location {url!r}: expected s3://bucket/prefix")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        endpoint = endpoint_url or os.environ.get("CONVEYOR_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint)
        # 8 MiB parts, few threads: memory stays flat whatever the file size.
        self.transfer = TransferConfig(multipart_chunksize=8 * CHUNK, max_concurrency=4, io_chunksize=CHUNK)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """botocore's failures as one line that names the bucket and the endpoint."""
        from botocore.exceptions import BotoCoreError
        from botocore.exceptions import ClientError as BotoError

        where = f"s3://{self.bucket} at {self.endpoint or 'AWS S3'}"
        try:
            yield
        except BotoError as exc:
            error = exc.response.get("Error", {})
            code, message = str(error.get("Code", "")), error.get("Message") or str(exc)
            if code == "NoSuchBucket" or (code in ("404", "NotFound") and exc.operation_name == "HeadBucket"):
                raise ConveyorError(
                    f"the S3 bucket {self.bucket!r} does not exist ({where}): create it first"
                ) from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ConveyorError(f"S3 refused access to {where} ({code}): check the credentials") from None
            raise ConveyorError(f"S3 error from {where}: {code} {message}") from None
        except BotoCoreError as exc:
            raise ConveyorError(f"cannot use {where}: {exc}") from None

    def check(self) -> None:
        """Fail now, with the bucket's name, if the bucket cannot be used (the registry server starts with it)."""
        with self._errors():
            self.client.head_bucket(Bucket=self.bucket)

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.prefix}/sha256/{digest}" if self.prefix else f"sha256/{digest}"

    def exists(self, digest: str) -> bool:
        from botocore.exceptions import ClientError as BotoError

        with self._errors():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
            except BotoError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    self.check()  # a missing bucket also answers 404 to HEAD: say which it is
                    return False
                raise
        return True

    def size(self, digest: str) -> int:
        with self._errors():
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(digest))["ContentLength"])

    def put(self, digest: str, chunks: Iterable[bytes]) -> int:
        final = self._key(digest)
        tmp = f"{self.prefix}/tmp/{uuid.uuid4().hex}" if self.prefix else f"tmp/{uuid.uuid4().hex}"
        reader = _HashingReader(chunks)
        with self._errors():
            # boto3 documents read() as all it needs of the file object; its stubs ask for a whole IO
            self.client.upload_fileobj(reader, self.bucket, tmp, Config=self.transfer)  # type: ignore[arg-type]
            try:
                if reader.hasher.hexdigest() != digest:
                    raise BlobCorrupt(
                        f"received bytes hash to sha256:{reader.hasher.hexdigest()}, expected sha256:{digest}"
                    )
                if not self.exists(digest):
                    self.client.copy({"Bucket": self.bucket, "Key": tmp}, self.bucket, final, Config=self.transfer)
            finally:
                self.client.delete_object(Bucket=self.bucket, Key=tmp)
        return reader.size

    def get(self, digest: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError as BotoError

        with self._errors():
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self._key(digest))["Body"]
            except BotoError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise NotFound(f"blob sha256:{digest} not found in {self.url}") from None
                raise
        return body.iter_chunks(CHUNK)


def open_blob_store(location: str) -> LocalBlobStore | S3BlobStore:
    if location.startswith("s3://"):
        return S3BlobStore(location)
    return LocalBlobStore(Path(location).expanduser())


def write_hashed(
    chunks: Iterable[bytes], directory: Path, prefix: str, progress: Progress | None = None, fsync: bool = False
) -> tuple[str, str, int]:
    """Write chunks to a new temporary file in ``directory``; returns (its path, sha256, size)."""
    hasher = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
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
    "S3BlobStore",
    "check_digest",
    "copy_verified",
    "open_blob_store",
]
