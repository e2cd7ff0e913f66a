"""Blobs in S3-compatible object storage (AWS S3, MinIO, ...), keyed by sha256 like the local store.

Uploads stream to a temporary key while hashed and are copied to their digest only when the
bytes match (``blobs.py`` has the interface and the local store).  Failures are one line naming
the bucket and the endpoint; an endpoint that cannot be reached is ``StorageUnavailable``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from urllib.parse import urlparse

from conveyor.digest import CHUNK
from conveyor.errors import ConveyorError, NotFound, StorageUnavailable
from conveyor.extras import needs
from conveyor.registry.blobs import BlobCorrupt, Stored, check_digest


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
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise StorageUnavailable(f"the blob store {where} is unavailable: {code} {message}") from None
            raise ConveyorError(f"S3 error from {where}: {code} {message}") from None
        except BotoCoreError as exc:  # no answer at all: the endpoint is down or unreachable
            raise StorageUnavailable(f"the blob store {where} is unreachable ({exc})") from None

    def check(self) -> None:
        """Fail now, with the bucket's name, if the bucket cannot be used (the registry server starts with it)."""
        with self._errors():
            self.client.head_bucket(Bucket=self.bucket)

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return self._under(f"sha256/{digest}")

    def _under(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

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
        tmp = self._under(f"tmp/{uuid.uuid4().hex}")
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

    def keep(self, digest: str) -> bool:
        """Whether the blob is stored (S3 keeps no use time: gc's re-check under the registry's lock decides)."""
        return self.exists(digest)

    # ---- what gc sees (registry/gc.py) ------------------------------------------------------

    def _objects(self, under: str) -> Iterator[tuple[str, int, float]]:
        prefix = self._under(under)
        with self._errors():
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(prefix) :], int(item["Size"]), item["LastModified"].timestamp()

    def blobs(self) -> Iterator[Stored]:
        for name, size, modified in self._objects("sha256/"):
            yield Stored(name, size, modified)

    def uploads(self) -> Iterator[Stored]:
        """Temporary objects, and multipart uploads never completed (a writer killed mid-upload)."""
        for name, size, modified in self._objects("tmp/"):
            yield Stored(name, size, modified)
        with self._errors():
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self._under("tmp/"))
        for upload in listing.get("Uploads", []):
            name = upload["Key"][len(self._under("tmp/")) :] + "?uploadId=" + upload["UploadId"]
            yield Stored(name, 0, upload["Initiated"].timestamp())

    def remove_upload(self, name: str) -> None:
        key, _, upload_id = name.partition("?uploadId=")
        with self._errors():
            if upload_id:
                key = self._under(f"tmp/{key}")
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            else:
                self.client.delete_object(Bucket=self.bucket, Key=self._under(f"tmp/{key}"))

    def remove_blob(self, digest: str, unless_used_since: float) -> bool:
        """Delete the blob unless it was written since ``unless_used_since``; whether it went."""
        from botocore.exceptions import ClientError as BotoError

        with self._errors():
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
            except BotoError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            if head["LastModified"].timestamp() > unless_used_since:
                return False
            self.client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        return True
