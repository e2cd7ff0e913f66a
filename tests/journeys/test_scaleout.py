"""Journey: the scale-out configuration. The registry server on PostgreSQL and S3 (moto's server over
real HTTP, standing in for AWS S3 or MinIO), several machines registering through it at once, TLS
with a private CA, and servers that go away in the middle of a call."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
import trustme

from tests.conftest import free_port
from tests.journeys.conftest import Spawned, User, copy_model, wait_http


def _registry(user: User, *args: str, scheme: str = "http", verify: object = True) -> Spawned:
    port = free_port()
    server = user.spawn("registry", "serve", "--port", str(port), *args, name="registry")
    server.url = f"{scheme}://127.0.0.1:{port}"
    wait_http(server, "/healthz", verify=verify)
    return server


def _token(user: User, scope: str = "write", *args: str) -> str:
    return user.ok(
        "registry", "token", "create", f"ci-{scope}-{time.monotonic_ns()}", "--scope", scope, *args
    ).stdout.strip()


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"models-{time.monotonic_ns()}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def test_postgres_and_s3_behind_the_registry_server(
    user: User, fresh_postgres: str, s3_endpoint: str, bucket: str, vote_folder: Path, tmp_path: Path
) -> None:
    s3_env = {"CONVEYOR_S3_ENDPOINT_URL": s3_endpoint}
    user.env.update(s3_env)
    database = ["--database", fresh_postgres]
    server = _registry(user, *database, "--blob-store", f"s3://{bucket}/registry")
    token = _token(user, "write", *database)

    # four machines register at once through the server: distinct versions, nothing lost
    def register(index: int) -> subprocess.CompletedProcess[str]:
        folder = copy_model(vote_folder, tmp_path / f"machine-{index}" / "votes")
        (folder / "notes.txt").write_text(f"trained on machine {index}\n")
        client = User(user.venv, folder.parent, env={"CONVEYOR_HOME": str(folder.parent / "home")})
        return client.run(
            "models", "register", "votes", "--name", "votes", "--json",
            env={"CONVEYOR_REGISTRY": server.url, "CONVEYOR_TOKEN": token},
        )  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(register, range(4)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sorted(json.loads(r.stdout)["version"] for r in results) == [1, 2, 3, 4]

    remote = {"CONVEYOR_REGISTRY": server.url, "CONVEYOR_TOKEN": token}
    listed = json.loads(user.ok("models", "show", "votes", "--json", env=remote).stdout)
    assert listed["version_count"] == 4 and listed["latest_version"] == 4

    # a download is verified against every sha256; the files really live in the bucket
    user.ok("models", "download", "votes:3", "-o", str(tmp_path / "dl"), env=remote)
    assert (tmp_path / "dl" / "notes.txt").read_text().startswith("trained on machine")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="registry/sha256/")["Contents"]]
    assert len(keys) == 4 + 3  # notes.txt differs per machine; model, tokenizer and spec are stored once

    # a tampered object in the bucket is refused with the file named, and nothing is written
    version = json.loads(user.ok("models", "show", "votes:2", "--json", env=remote).stdout)
    model_sha = next(f["sha256"] for f in version["files"] if f["path"] == "model.onnx")
    s3.put_object(Bucket=bucket, Key=f"registry/sha256/{model_sha}", Body=b"not the model")
    result = user.run("models", "download", "votes:2", "-o", str(tmp_path / "dl2"), env=remote)
    assert result.returncode == 1 and "model.onnx" in _one_line(result) and "corrupt" in result.stderr
    assert not (tmp_path / "dl2").exists()


def test_a_missing_bucket_is_named_in_one_line(user: User, s3_endpoint: str, tmp_path: Path) -> None:
    user.env["CONVEYOR_S3_ENDPOINT_URL"] = s3_endpoint
    result = user.run("registry", "serve", "--port", str(free_port()), "--blob-store", "s3://no-such-bucket/x")
    assert result.returncode == 1 and "'no-such-bucket' does not exist" in _one_line(result)
    # the embedded registry on S3 says the same
    env = {"CONVEYOR_REGISTRY": f"sqlite:///{tmp_path / 'r.db'}", "CONVEYOR_BLOB_STORE": "s3://no-such-bucket/x"}
    (user.workdir / "weights.bin").write_bytes(b"w" * 1000)
    result = user.run("models", "register", "weights.bin", "--name", "w", "--no-check", env=env)
    assert result.returncode == 1 and "'no-such-bucket' does not exist" in _one_line(result)


def test_a_registry_server_killed_mid_upload_leaves_one_line_and_no_version(user: User, tmp_path: Path) -> None:
    server = _registry(user)
    token = _token(user)
    big = user.workdir / "big"
    big.mkdir()
    with open(big / "weights.bin", "wb") as handle:
        for _ in range(400):
            handle.write(os.urandom(1024 * 1024))
    remote = {"CONVEYOR_REGISTRY": server.url, "CONVEYOR_TOKEN": token}
    client = subprocess.Popen(
        [user.conveyor_bin, "models", "register", "big", "--name", "big", "--no-check"],
        cwd=user.workdir,
        env=user.environ(remote),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    uploads = Path(user.env["CONVEYOR_HOME"]) / "blobs" / "tmp"
    deadline = time.monotonic() + 60
    while not any(upload.stat().st_size for upload in uploads.glob("upload-*")):  # bytes written: mid-upload
        assert time.monotonic() < deadline and client.poll() is None, "the upload never started"
        time.sleep(0.02)
    server.process.send_signal(signal.SIGKILL)
    _, stderr = client.communicate(timeout=60)
    assert client.returncode == 1 and "Traceback" not in stderr
    line = _one_line(subprocess.CompletedProcess([], 1, "", stderr))
    assert f"cannot reach the registry at {server.url}" in line and "nothing was registered" in line

    restarted = _registry(user)
    result = user.run("models", "show", "big", env={**remote, "CONVEYOR_REGISTRY": restarted.url})
    assert result.returncode == 4  # no model, no half-made version
    assert not any(uploads.glob("upload-*"))  # the restarted server removed the killed one's upload


def test_tls_registry_and_router_verify_certificates(user: User, vote_folder: Path, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(key_pem))
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    tls = ["--tls-cert", str(cert_pem), "--tls-key", str(key_pem)]
    trusting = ssl.create_default_context(cafile=str(ca_pem))

    server = _registry(user, *tls, scheme="https", verify=trusting)
    token = _token(user)
    copy_model(vote_folder, user.workdir / "votes")
    remote = {"CONVEYOR_REGISTRY": server.url, "CONVEYOR_TOKEN": token}

    result = user.run("models", "register", "votes", "--name", "votes", env=remote)
    line = _one_line(result)
    assert result.returncode == 1 and "certificate" in line and "CONVEYOR_CA_BUNDLE" in line
    trusted = {**remote, "CONVEYOR_CA_BUNDLE": str(ca_pem)}
    user.ok("models", "register", "votes", "--name", "votes", "--alias", "production", env=trusted)
    assert json.loads(user.ok("models", "show", "votes@production", "--json", env=trusted).stdout)["version"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz")  # plain clients refuse the unknown CA too

    router_port = free_port()
    router = user.spawn("router", "--service", "votes", "--port", str(router_port), *tls, name="router")
    router.url = f"https://127.0.0.1:{router_port}"
    wait_http(router, "/_conveyor/health", verify=trusting)
    result = user.run("rollout", "start", "votes:1", "--router", router.url, env=trusted | {"CONVEYOR_CA_BUNDLE": ""})
    assert result.returncode != 0 and "CONVEYOR_CA_BUNDLE" in _one_line(result)
    user.ok("rollout", "start", "votes:1", "--router", router.url, env=trusted)
    answer = httpx.post(router.url + "/predict", json=["good great"], verify=trusting)
    assert answer.json() == {"positive": True}
    user.ok("rollout", "down", "votes", env=trusted)
