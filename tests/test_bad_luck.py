"""Bad luck is one clear line (issue 44): a full disk, a read-only folder, an unreachable database or
blob store, in the CLI and through the registry server, always saying that nothing was registered
and leaving nothing behind.

The full disk is a real one: a 2 MiB tmpfs (mounting needs root, as CI runs; elsewhere these tests
skip saying so, and fail under CI).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor.cli.output import EXIT_STORAGE
from conveyor.errors import StorageFull, StorageUnavailable
from conveyor.registry.config import open_local
from conveyor.registry.local import LocalRegistry
from conveyor.registry.s3_blobs import S3BlobStore
from tests.conftest import free_port
from tests.machine import missing, tool
from tests.registry_fixtures import RegistryServer, run_cli

MODEL_BYTES = 3_000_000  # more than the 2 MiB disk holds


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        [tool("mount"), "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        missing(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}): the full-disk tests need root")
    try:
        yield where
    finally:
        subprocess.run([tool("umount"), "-l", str(where)], capture_output=True)


@pytest.fixture
def big_model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(MODEL_BYTES - 3))
    (folder / "notes.txt").write_text("hi\n")
    return folder


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def registry_at(home: Path) -> LocalRegistry:
    home.mkdir(exist_ok=True)
    return open_local(f"sqlite:///{home / 'registry.db'}", str(home / "blobs"))


def on(home: Path, **extra: str) -> dict[str, str]:
    return {"CONVEYOR_HOME": str(home), "CONVEYOR_REGISTRY": "", "CONVEYOR_TOKEN": "", **extra}


def test_registering_onto_a_full_disk_is_one_line_and_leaves_nothing(small_disk: Path, big_model: Path) -> None:
    home = small_disk / "home"
    result = run_cli("models", "register", str(big_model), "--name", "big", "--no-check", env=on(home))
    assert result.returncode == EXIT_STORAGE, result.stderr
    assert error_lines(result) == [
        f"error: the disk holding {home / 'blobs'} is full: nothing was registered (3.0 MB needed)"
    ]
    assert registry_at(home).list_models() == []
    assert list((home / "blobs" / "tmp").iterdir()) == []  # no temporary upload left


def test_the_registry_server_answers_507_and_the_client_says_the_same_line(
    small_disk: Path, big_model: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    tokens = registry_at(home).tokens
    token = tokens.create("ci", "write")
    tokens.engine.dispose()
    server = RegistryServer(home)
    try:
        weights = (big_model / "weights.bin").read_bytes()
        digest = __import__("hashlib").sha256(weights).hexdigest()
        answer = httpx.put(
            f"{server.url}/api/v1/blobs/{digest}",
            content=weights,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        line = f"the disk holding {home / 'blobs'} is full: nothing was registered (3.0 MB needed)"
        assert (answer.status_code, answer.json()) == (507, {"error": line})
        client = on(tmp_path / "client", CONVEYOR_REGISTRY=server.url, CONVEYOR_TOKEN=token)
        result = run_cli("models", "register", str(big_model), "--name", "big", "--no-check", env=client)
        assert result.returncode == EXIT_STORAGE, result.stderr
        assert error_lines(result) == [f"error: the registry at {server.url}: {line}"]
        assert httpx.get(f"{server.url}/api/v1/models", headers={"Authorization": f"Bearer {token}"}).json() == []
        assert list((home / "blobs" / "tmp").iterdir()) == []
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_a_read_only_registry_refuses_each_write_in_one_line_and_the_server_answers_503(
    small_disk: Path, tmp_path: Path
) -> None:
    from starlette.testclient import TestClient

    from conveyor.registry.server import create_registry_app

    home = small_disk / "home"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("a")
    registry = registry_at(home)
    registry.register(tmp_path / "m", "m")
    (home / "blobs" / "tmp" / "upload-killed").write_bytes(b"u" * 100)  # a killed writer's leftover
    registry.store.engine.dispose()  # a disk with a file open for writing cannot turn read-only
    subprocess.run([tool("mount"), "-o", "remount,ro", str(small_disk)], check=True)
    database = home / "registry.db"
    result = run_cli("models", "tag", "m:1", "k=v", env=on(home))
    assert result.returncode == EXIT_STORAGE, result.stderr
    assert error_lines(result) == [f"error: cannot write {database} (read-only): nothing was changed"]
    with pytest.raises(StorageUnavailable, match=f"^cannot write {database} \\(read-only\\)$"):
        registry.tokens.create("x", "read")
    # a server that opened the registry before its disk went read-only answers 503 with the line
    with TestClient(create_registry_app(registry, require_auth=False)) as http:
        tag = http.patch("/api/v1/models/m/versions/1/tags", json={"set": {"k": "v"}})
        alias = http.put("/api/v1/models/m/aliases/prod", json={"version": 1})
        upload = http.put(f"/api/v1/blobs/{'0' * 64}", content=b"x")
    for answer in (tag, alias):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"].startswith(f"cannot write {database} (read-only")
        assert answer.json()["error"].endswith("nothing was changed")
    assert (upload.status_code, upload.json()) == (
        503,
        {"error": f"cannot write {home / 'blobs'} (read-only): nothing was registered (1 bytes needed)"},
    )
    # a server on the read-only registry refuses to start in one line; one whose database is elsewhere
    # starts, and the leftover upload it cannot remove from the read-only folder is one warning
    blobs = ["--blob-store", str(home / "blobs"), "--insecure-no-auth"]
    refused = run_cli("registry", "serve", "--port", str(free_port()), "--database", f"sqlite:///{database}", *blobs)
    assert refused.returncode == EXIT_STORAGE, refused.stderr
    assert error_lines(refused) == [f"error: cannot write {database} (read-only)"]
    elsewhere = tmp_path / "server"
    elsewhere.mkdir()
    server = RegistryServer(elsewhere, blobs)
    try:
        assert httpx.get(f"{server.url}/api/v1/models").json() == []
    finally:
        server.stop()
    assert f"warning: abandoned uploads were not removed: cannot write {home / 'blobs'}" in server.log()
    assert "Traceback" not in server.log()
    subprocess.run([tool("mount"), "-o", "remount,rw", str(small_disk)], check=True)
    assert registry.get_model("m").tags == {} and registry.get_model("m").aliases == []


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://conveyor:s3cret@127.0.0.1:{free_port()}/registry"
    with pytest.raises(StorageUnavailable) as caught:
        open_local(url, str(tmp_path / "blobs"))
    assert str(caught.value) == (f"the registry database at {url.replace('s3cret', '***')} is unreachable")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_text("a")
    result = run_cli("models", "register", str(tmp_path / "m"), "--name", "m", "--no-check",
                     env=on(tmp_path / "home", CONVEYOR_REGISTRY=url))  # fmt: skip
    assert result.returncode == EXIT_STORAGE
    assert error_lines(result) == [f"error: {caught.value}: nothing was registered"]
    assert "s3cret" not in result.stderr


def test_an_unreachable_s3_endpoint_is_storage_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_MAX_ATTEMPTS", "1")):  # fmt: skip
        monkeypatch.setenv(name, value)
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3BlobStore("s3://models/x", endpoint_url=endpoint)
    with pytest.raises(StorageUnavailable, match=rf"^the blob store s3://models at {endpoint} is unreachable"):
        store.put("0" * 64, [b"x"])


def test_storage_errors_say_what_did_not_happen_once() -> None:
    full = StorageFull("the disk holding /srv is full")
    told = full.after("nothing was registered", 2_500_000)
    assert str(told) == "the disk holding /srv is full: nothing was registered (2.5 MB needed)"
    assert told.after("nothing was changed") is told
    assert told.status == 507 and StorageUnavailable("x").status == 503
