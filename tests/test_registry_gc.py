"""``conveyor registry gc``: abandoned uploads and unreferenced blobs go, while writers keep registering (issue 44).

Leftovers are made the way crashes make them: a temporary upload no process holds, a complete
blob no version names (aged past the grace period by setting its time back), a version deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from conveyor.registry.blobs import LocalBlobStore
from conveyor.registry.config import open_local
from conveyor.registry.gc import collect_garbage
from conveyor.registry.local import LocalRegistry
from conveyor.registry.sql import SqlStore
from tests.registry_fixtures import RegistryServer, run_cli

HOURS_AGO = time.time() - 2 * 3600


def open_registry_at(database_url: str | None) -> LocalRegistry:
    return open_local(database_url) if database_url else open_local()


def plant_blob(blobs: LocalBlobStore, content: bytes) -> str:
    """A complete blob no version references, last written two hours ago."""
    digest = hashlib.sha256(content).hexdigest()
    blobs.put(digest, [content])
    os.utime(blobs._path(digest), (HOURS_AGO, HOURS_AGO))
    return digest


def plant_upload(blobs: LocalBlobStore, name: str, size: int = 1000) -> Path:
    """A temporary upload a killed writer left (no process holds it any more)."""
    path = blobs.root / "tmp" / name
    path.write_bytes(b"u" * size)
    return path


def folder(root: Path, name: str, files: dict[str, bytes]) -> Path:
    path = root / name
    path.mkdir(parents=True)
    for relative, content in files.items():
        (path / relative).write_bytes(content)
    return path


def test_gc_lists_in_a_dry_run_and_removes_only_leftovers_with_delete(conveyor_home: Path, tmp_path: Path) -> None:
    registry = open_local()
    assert isinstance(registry.blobs, LocalBlobStore)
    kept = registry.register(folder(tmp_path, "a", {"w.bin": b"kept"}), "m")
    gone = registry.register(folder(tmp_path, "b", {"w.bin": b"deleted version"}), "m")
    registry.delete_version("m", gone.version)
    os.utime(registry.blobs._path(gone.files[0].sha256), (HOURS_AGO, HOURS_AGO))
    orphan = plant_blob(registry.blobs, b"a killed registration's file")
    fresh = hashlib.sha256(b"being registered now").hexdigest()
    registry.blobs.put(fresh, [b"being registered now"])  # stored, its version not made yet: within grace
    abandoned = plant_upload(registry.blobs, "upload-killed")
    held = plant_upload(registry.blobs, "upload-in-progress")
    with open(held, "rb") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # a writer still at work holds its upload's lock
        dry = json.loads(run_cli("registry", "gc", "--json", check=True).stdout)
        expected = {("upload", "upload-killed"), ("blob", orphan), ("blob", gone.files[0].sha256)}
        assert {(item["kind"], item["name"]) for item in dry["leftovers"]} == expected
        assert dry["deleted"] is False and dry["bytes"] == 1000 + len(b"a killed registration's file") + len(
            b"deleted version"
        )
        assert abandoned.exists() and registry.blobs.exists(orphan)  # a dry run removes nothing
        # the young orphan is not a leftover yet, but the dry run says it is there and why it stays
        assert [(item["name"], item["size"]) for item in dry["spared"]] == [(fresh, len(b"being registered now"))]
        text = run_cli("registry", "gc", check=True).stdout
        assert "kept: 1 unreferenced blobs (20 B) younger than --grace 1h\n" in text
        report = collect_garbage(registry.store, registry.blobs, delete=True)
    assert {(item.kind, item.name) for item in report.leftovers} == expected
    assert not abandoned.exists() and held.exists()
    assert not registry.blobs.exists(orphan) and not registry.blobs.exists(gone.files[0].sha256)
    assert registry.blobs.exists(fresh)
    registry.download(kept.ref, tmp_path / "download")
    assert (tmp_path / "download" / "w.bin").read_bytes() == b"kept"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_gc_while_a_writer_registers_in_a_loop_loses_no_version(
    conveyor_home: Path, tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    """The hard case: each time, the writer registers a file identical to an old orphan gc is deleting.

    On PostgreSQL gc holds an advisory lock alone that versions are made under, shared."""
    url = request.getfixturevalue("fresh_postgres") if database == "postgresql" else None
    rounds = 15 if url else 40  # each PostgreSQL registration costs more round trips

    def open_local() -> LocalRegistry:
        return open_registry_at(url)

    registry = open_local()
    assert isinstance(registry.blobs, LocalBlobStore)
    unused = [plant_blob(registry.blobs, f"orphan {i}".encode()) for i in range(6)]
    registered: list[str] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        own = open_local()
        try:
            for i in range(rounds):
                shared = f"weights a killed run stored {i}".encode()
                plant_blob(registry.blobs, shared)
                files = {"shared.bin": shared, "own.bin": f"version {i}".encode()}
                registered.append(own.register(folder(tmp_path / "src", str(i), files), "loop").ref)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    passes = 0
    while not done.is_set() or passes == 0:
        collect_garbage(registry.store, registry.blobs, grace=60, delete=True)
        passes += 1
        time.sleep(0.005)  # let the writer take the lock between passes
    thread.join()
    assert failures == [] and len(registered) == rounds
    for ref in registered:  # every version downloads, each file verified against its sha256
        registry.download(ref, tmp_path / "check" / ref.replace(":", "-"))
    assert not any(registry.blobs.exists(digest) for digest in unused)
    assert passes > 1, "gc ran once only: the writer finished before gc could race it"


def test_gc_on_s3_removes_temporary_objects_unfinished_uploads_and_unreferenced_blobs(
    s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    from conveyor.registry.s3_blobs import S3BlobStore

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="gc-bucket")
    blobs = S3BlobStore("s3://gc-bucket/reg", endpoint_url=s3_endpoint)
    registry = LocalRegistry(SqlStore(f"sqlite:///{tmp_path / 'r.db'}"), blobs, cache_dir=tmp_path / "cache")
    version = registry.register(folder(tmp_path, "m", {"w.bin": b"referenced"}), "m")
    orphan = hashlib.sha256(b"orphan").hexdigest()
    blobs.put(orphan, [b"orphan"])
    s3.put_object(Bucket="gc-bucket", Key="reg/tmp/killed", Body=b"t" * 10)
    unfinished = s3.create_multipart_upload(Bucket="gc-bucket", Key="reg/tmp/unfinished")["UploadId"]
    two_hours_later = time.time() + 7200  # S3 keeps its own times: move gc's clock instead
    dry = collect_garbage(registry.store, blobs, clock=lambda: two_hours_later)
    names = {item.name for item in dry.leftovers}
    assert names == {orphan, "killed", f"unfinished?uploadId={unfinished}"}
    collect_garbage(registry.store, blobs, delete=True, clock=lambda: two_hours_later)
    assert not blobs.exists(orphan) and blobs.exists(version.files[0].sha256)
    assert "Contents" not in s3.list_objects_v2(Bucket="gc-bucket", Prefix="reg/tmp/")
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="gc-bucket", Prefix="reg/tmp/")
    registry.download(version.ref, tmp_path / "download")


def test_the_registry_server_removes_abandoned_uploads_at_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    blobs = LocalBlobStore(home / "blobs")
    abandoned = plant_upload(blobs, "upload-killed-server", size=258_000)
    held = plant_upload(blobs, "upload-other-server")
    with open(held, "rb") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # another server sharing the folder is writing it
        server = RegistryServer(home, ["--insecure-no-auth"])
        server.stop()
    assert not abandoned.exists() and held.exists()
    assert f"removed 1 abandoned temporary upload(s) from {home / 'blobs'}" in server.log()
