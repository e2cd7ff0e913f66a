"""The embedded registry (SQLite + local blobs), PostgreSQL and S3 backends, events, and serving by reference."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from conveyor.errors import ClientError
from conveyor.registry.blobs import BlobCorrupt, LocalBlobStore
from conveyor.registry.config import open_local
from conveyor.registry.events import verify_signature
from conveyor.registry.local import LocalRegistry
from conveyor.registry.records import FileEntry, NewVersion
from conveyor.registry.s3_blobs import S3BlobStore
from conveyor.registry.sql import SqlStore
from tests.conftest import REPO, free_port, start_server
from tests.registry_fixtures import run_cli


@pytest.fixture
def home(conveyor_home: Path) -> Path:
    return conveyor_home


@pytest.fixture
def registry(home: Path) -> LocalRegistry:
    return open_local()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_register_stores_files_with_checksums_and_numbers_versions(registry: LocalRegistry, vote_model: Path) -> None:
    first = registry.register(
        vote_model,
        "votes",
        description="v1",
        tags={"team": "ml"},
        properties={"dataset": "toy"},
        aliases=["production"],
    )
    second = registry.register(vote_model, "votes")
    assert (first.version, second.version) == (1, 2)
    by_path = {f.path: f for f in first.files}
    assert set(by_path) == {"model.onnx", "tokenizer.json", "model.yaml"}
    for path, entry in by_path.items():
        assert entry.sha256 == sha(vote_model / path)
        assert entry.size == (vote_model / path).stat().st_size
    assert first.digest == second.digest  # same files, same version digest
    assert first.framework == "onnx" and first.framework_version == "opset 17"
    assert first.properties["dataset"] == "toy" and first.properties["onnx.opset"] == "17"
    assert first.tags == {"team": "ml"}
    assert first.lineage.source == str(vote_model.resolve())
    assert first.aliases == ["production"]
    # identical blobs are stored once
    blobs = list((registry.blobs.root / "sha256").rglob("*"))  # type: ignore[attr-defined]
    assert len([b for b in blobs if b.is_file()]) == 3


def test_references_resolve_by_version_alias_and_latest(registry: LocalRegistry, vote_model: Path) -> None:
    registry.register(vote_model, "votes", aliases=["production"])
    registry.register(vote_model, "votes", aliases=["staging"])
    registry.register(vote_model, "votes")
    assert registry.resolve("votes:2").version == 2
    assert registry.resolve("votes@production").version == 1
    assert registry.resolve("votes@staging").version == 2
    assert registry.resolve("votes").version == 3
    registry.archive_version("votes", 3)
    assert registry.resolve("votes").version == 2, "latest skips archived versions"
    assert [v.version for v in registry.list_versions("votes")] == [1, 2]
    assert [v.version for v in registry.list_versions("votes", include_archived=True)] == [1, 2, 3]
    with pytest.raises(ClientError, match="not found"):
        registry.resolve("votes@canary")
    with pytest.raises(ClientError, match="not found"):
        registry.resolve("missing")


def test_protected_alias_moves_only_with_force(registry: LocalRegistry, vote_model: Path) -> None:
    registry.register(vote_model, "votes")
    registry.register(vote_model, "votes")
    assert registry.set_alias("votes", "production", 1, protect=True).protected
    with pytest.raises(ClientError, match="protected") as refused:
        registry.set_alias("votes", "production", 2)
    assert refused.value.status == 409
    assert registry.resolve("votes@production").version == 1
    assert registry.set_alias("votes", "production", 2, force=True).version == 2
    with pytest.raises(ClientError, match="protected"):
        registry.delete_alias("votes", "production")
    assert registry.delete_alias("votes", "production", force=True) == 2


def test_archive_and_delete_are_refused_while_an_alias_points_at_the_version(
    registry: LocalRegistry, vote_model: Path
) -> None:
    registry.register(vote_model, "votes", aliases=["production"])
    for action in (registry.archive_version, registry.delete_version):
        with pytest.raises(ClientError, match="aliases point at it") as refused:
            action("votes", 1)
        assert refused.value.status == 409
    registry.delete_alias("votes", "production")
    registry.delete_version("votes", 1)
    with pytest.raises(ClientError, match="not found"):
        registry.resolve("votes:1")


def test_tags_change_and_properties_stay(registry: LocalRegistry, vote_model: Path) -> None:
    registry.register(vote_model, "votes", tags={"a": "1"}, properties={"p": "x"})
    assert registry.set_tags("votes", 1, {"b": "2"}, ["a"]) == {"b": "2"}
    assert registry.set_tags("votes", None, {"owner": "ml"}, []) == {"owner": "ml"}
    version = registry.resolve("votes:1")
    assert version.tags == {"b": "2"} and version.properties["p"] == "x"
    assert registry.get_model("votes").tags == {"owner": "ml"}


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "x\x00y", "with space", ""])
def test_path_traversal_and_control_characters_in_names_are_rejected(
    registry: LocalRegistry, vote_model: Path, name: str
) -> None:
    with pytest.raises(ClientError, match="invalid model name"):
        registry.register(vote_model, name)


@pytest.mark.parametrize("path", ["../evil", "/etc/passwd", "a/../../b", "a\\b"])
def test_file_paths_that_climb_out_are_rejected(registry: LocalRegistry, vote_model: Path, path: str) -> None:
    digest = sha(vote_model / "model.yaml")
    registry.blobs.put(digest, [(vote_model / "model.yaml").read_bytes()])
    new = NewVersion(files=[FileEntry(path=path, sha256=digest, size=1)])
    with pytest.raises(ClientError, match="invalid file path"):
        registry.create_version("votes", new)


def test_download_verifies_and_detects_a_corrupt_blob(
    registry: LocalRegistry, vote_model: Path, tmp_path: Path
) -> None:
    version = registry.register(vote_model, "votes")
    good = tmp_path / "good"
    registry.download("votes:1", good)
    for entry in version.files:
        assert sha(good / entry.path) == entry.sha256
    # flip one byte of the stored ONNX blob
    onnx_entry = next(f for f in version.files if f.path == "model.onnx")
    blob = registry.blobs.root / "sha256" / onnx_entry.sha256[:2] / onnx_entry.sha256  # type: ignore[attr-defined]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.chmod(stat.S_IWUSR | stat.S_IRUSR)
    blob.write_bytes(bytes(data))
    target = tmp_path / "bad"
    with pytest.raises(BlobCorrupt, match="corrupt"):
        registry.download("votes:1", target)
    assert not target.exists() or not any(target.iterdir()), "a failed download leaves nothing behind"
    result = run_cli("models", "download", "votes:1", "-o", str(tmp_path / "cli"))
    assert result.returncode == 1
    assert "corrupt" in result.stderr


def _big_file(path: Path, mib: int) -> Path:
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(1024 * 1024))
    return path


def test_a_killed_upload_leaves_no_visible_version_and_no_corrupt_blob(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    _big_file(folder / "weights.bin", 300)
    (folder / "small.txt").write_text("hello")
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "models", "register", str(folder), "--name", "big", "--no-check"],
        env={**os.environ, "CONVEYOR_HOME": str(home)},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tmp_dir = home / "blobs" / "tmp"
    deadline = time.monotonic() + 60

    def copying() -> bool:
        for partial in tmp_dir.iterdir() if tmp_dir.is_dir() else []:
            try:
                if partial.stat().st_size > 10 * 1024 * 1024:
                    return True
            except FileNotFoundError:  # a small file's upload finished and moved between listing and stat
                continue
        return False

    while time.monotonic() < deadline:  # wait until the copy of the big blob is under way
        if copying():
            break
        time.sleep(0.01)
    else:
        process.kill()
        pytest.fail("the upload never started")
    process.send_signal(signal.SIGKILL)
    process.wait()
    registry = open_local()
    with pytest.raises(ClientError, match="not found"):
        registry.resolve("big")
    assert registry.list_models() == []
    weights = sha(folder / "weights.bin")
    assert not registry.blobs.exists(weights), "a partial blob must never appear under its digest"
    # and the same registration then succeeds
    version = registry.register(folder, "big")
    assert version.version == 1 and registry.blobs.exists(weights)


REGISTER_MANY = """
import sys
from pathlib import Path
from conveyor.registry.config import open_registry
registry = open_registry(sys.argv[1] or None)
for _ in range(int(sys.argv[3])):
    print(registry.register(Path(sys.argv[2]), "shared").version, flush=True)
"""


def _register_concurrently(home: Path, location: str, model: Path, processes: int, each: int) -> list[int]:
    env = {**os.environ, "CONVEYOR_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER_MANY, location, str(model), str(each)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    versions = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        versions += [int(line) for line in out.split()]
    return versions


def test_concurrent_registrations_get_distinct_versions_on_sqlite(home: Path, vote_model: Path) -> None:
    versions = _register_concurrently(home, "", vote_model, processes=4, each=5)
    assert sorted(versions) == list(range(1, 21))
    assert [v.version for v in open_local().list_versions("shared")] == list(range(1, 21))


def test_concurrent_registrations_get_distinct_versions_on_postgres(
    home: Path,
    vote_model: Path,
    fresh_postgres: str,
) -> None:
    versions = _register_concurrently(home, fresh_postgres, vote_model, processes=4, each=5)
    assert sorted(versions) == list(range(1, 21))


def test_postgres_backend_supports_the_whole_lifecycle(
    home: Path, vote_model: Path, fresh_postgres: str, tmp_path: Path
) -> None:
    registry = open_local(database_url=fresh_postgres)
    assert isinstance(registry.store, SqlStore) and registry.store.engine.dialect.name == "postgresql"
    registry.register(vote_model, "votes", aliases=["production"], tags={"k": "v"})
    registry.register(vote_model, "votes")
    registry.set_alias("votes", "production", 2, protect=True)
    with pytest.raises(ClientError, match="protected"):
        registry.set_alias("votes", "production", 1)
    assert registry.resolve("votes@production").version == 2
    assert registry.get_model("votes").latest_version == 2
    registry.download("votes@production", tmp_path / "out")
    assert sha(tmp_path / "out" / "model.onnx") == sha(vote_model / "model.onnx")
    token = registry.tokens.create("ci", "read")
    assert registry.tokens.scope_of(token) == ("ci", "read")


def test_s3_blob_store_over_http(home: Path, vote_model: Path, s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="models")
    blobs = S3BlobStore("s3://models/conveyor", endpoint_url=s3_endpoint)
    registry = LocalRegistry(SqlStore(f"sqlite:///{tmp_path / 'meta.db'}"), blobs)
    first = registry.register(vote_model, "votes")
    registry.register(vote_model, "votes")
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="models")["Contents"]]
    assert sorted(keys) == sorted(f"conveyor/sha256/{f.sha256}" for f in first.files), "stored once, no temp left"
    registry.download("votes:2", tmp_path / "out")
    assert sha(tmp_path / "out" / "model.onnx") == sha(vote_model / "model.onnx")
    with pytest.raises(BlobCorrupt):
        blobs.put("0" * 64, [b"bytes that do not hash to zeros"])
    assert not blobs.exists("0" * 64)


def test_s3_store_detects_a_corrupted_object(
    home: Path,
    vote_model: Path,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="corrupt")
    registry = LocalRegistry(
        SqlStore(f"sqlite:///{tmp_path / 'meta.db'}"), S3BlobStore("s3://corrupt", endpoint_url=s3_endpoint)
    )
    version = registry.register(vote_model, "votes")
    entry = next(f for f in version.files if f.path == "model.yaml")
    client.put_object(Bucket="corrupt", Key=f"sha256/{entry.sha256}", Body=b"tampered")
    with pytest.raises(BlobCorrupt):
        registry.download("votes:1", tmp_path / "out")


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_first > 0:
            _Receiver.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhooks_are_signed_and_retried_and_local_hooks_run(
    registry: LocalRegistry, vote_model: Path, home: Path
) -> None:
    server = HTTPServer(("127.0.0.1", free_port()), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.received = []
    _Receiver.fail_first = 1  # the first delivery fails: the dispatcher retries
    try:
        registry.webhooks.add(f"http://127.0.0.1:{server.server_port}/hook", "s3cret")
        hooks = home / "hooks"
        hooks.mkdir()
        hook = hooks / "on-event"
        hook.write_text(f"#!/bin/sh\ncat >> {home / 'events.jsonl'}\necho >> {home / 'events.jsonl'}\n")
        hook.chmod(0o755)
        registry.register(vote_model, "votes", aliases=["staging"])
        registry.set_alias("votes", "production", 1)
        assert registry.events.flush(timeout=30)  # delivered off the caller's path: wait for the queues
    finally:
        server.shutdown()
    kinds = [headers["X-Conveyor-Event"] for headers, _ in _Receiver.received]
    assert kinds == ["model_version.created", "alias.moved", "alias.moved"]
    for headers, body in _Receiver.received:
        assert verify_signature("s3cret", body, headers["X-Conveyor-Signature"])
        assert not verify_signature("wrong", body, headers["X-Conveyor-Signature"])
    created = json.loads(_Receiver.received[0][1])
    assert created["model"] == "votes" and created["version"] == 1 and len(created["digest"]) == 64
    local = [json.loads(line) for line in (home / "events.jsonl").read_text().split("\n") if line.strip()]
    assert [e["type"] for e in local] == kinds
    assert local[-1]["alias"] == "production"


def test_cli_register_list_show_download_alias_tag_archive(home: Path, vote_model: Path, tmp_path: Path) -> None:
    out = run_cli(
        "models",
        "register",
        str(vote_model),
        "--name",
        "votes",
        "--tag",
        "team=ml",
        "--property",
        "data=toy",
        "--metric",
        "accuracy=0.9",
        "--alias",
        "production",
        "--json",
        check=True,
    )
    registered = json.loads(out.stdout)
    assert registered["version"] == 1 and registered["lineage"]["metrics"] == {"accuracy": 0.9}
    run_cli("models", "register", str(vote_model), "--name", "votes", check=True)
    listed = json.loads(run_cli("models", "list", "--json", check=True).stdout)
    assert listed[0]["name"] == "votes" and listed[0]["latest_version"] == 2
    assert "votes" in run_cli("models", "list", check=True).stdout
    shown = json.loads(run_cli("models", "show", "votes@production", "--json", check=True).stdout)
    assert shown["version"] == 1
    assert "model.onnx" in run_cli("models", "show", "votes:1", check=True).stdout
    run_cli("models", "alias", "set", "votes@production", "2", "--protect", check=True)
    refused = run_cli("models", "alias", "set", "votes@production", "1")
    assert refused.returncode == 5 and "protected" in refused.stderr
    tagged = json.loads(run_cli("models", "tag", "votes:1", "stage=old", "--json", check=True).stdout)
    assert tagged["tags"] == {"team": "ml", "stage": "old"}
    run_cli("models", "archive", "votes:1", check=True)
    download = run_cli("models", "download", "votes@production", "-o", str(tmp_path / "dl"), check=True)
    assert "verified" in download.stdout
    assert sha(tmp_path / "dl" / "model.onnx") == sha(vote_model / "model.onnx")
    missing = run_cli("models", "show", "nothing:1")
    assert missing.returncode == 4 and "not found" in missing.stderr
    bad = run_cli("models", "register", str(vote_model), "--name", "../escape")
    assert bad.returncode == 2 and "invalid model name" in bad.stderr


def test_serve_a_registry_reference(home: Path, vote_model: Path, tmp_path: Path) -> None:
    registry = open_local()
    registry.register(vote_model, "votes")
    registry.register(vote_model, "votes", aliases=["production"])
    server = start_server("votes@production", tmp_path=tmp_path)
    try:
        assert httpx.post(f"{server.url}/predict", json=["good"]).json() == {"positive": True}
        meta = httpx.get(f"{server.url}/v2/models/votes").json()
        assert meta["versions"] == ["2"]
        assert "serving votes:2" in server.log() and "verified" in server.log()
    finally:
        server.stop()
    cached = list((home / "cache" / "votes").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("2-")


def test_local_blob_store_refuses_a_digest_mismatch(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobCorrupt):
        store.put("a" * 64, [b"not matching"])
    assert not store.exists("a" * 64)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_skip_unchanged_registers_nothing_for_identical_files(
    registry: LocalRegistry, vote_model: Path, tmp_path: Path
) -> None:
    first = registry.register(vote_model, "votes", skip_unchanged=True)
    again = registry.register(vote_model, "votes", skip_unchanged=True, aliases=["production"])
    assert (first.version, again.version, again.unchanged) == (1, 1, True)
    assert registry.resolve("votes@production").version == 1
    changed = tmp_path / "changed"
    changed.mkdir()
    for item in vote_model.iterdir():
        (changed / item.name).write_bytes(item.read_bytes())
    (changed / "model.yaml").write_text((vote_model / "model.yaml").read_text() + "description: changed\n")
    assert registry.register(changed, "votes", skip_unchanged=True).version == 2
    # the first files again, with version 2 (a variant, say) registered since: version 1, no duplicate
    third = registry.register(vote_model, "votes", skip_unchanged=True, aliases=["production"])
    assert (third.version, third.unchanged) == (1, True)
    assert [v.version for v in registry.list_versions("votes")] == [1, 2]
    assert registry.resolve("votes@production").version == 1
    # an archived version is not brought back: the files register anew
    registry.delete_alias("votes", "production")
    registry.archive_version("votes", 1)
    assert registry.register(vote_model, "votes", skip_unchanged=True).version == 3
