"""The registry server on 127.0.0.1 with real tokens, used by the CLI and the Python API unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from conveyor.errors import ClientError
from conveyor.registry.client import RemoteRegistry
from conveyor.registry.config import open_registry
from tests.registry_fixtures import RegistryServer, run_cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> RegistryServer:
    home = tmp_path_factory.mktemp("registry-home")
    srv = RegistryServer(home)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tokens(server: RegistryServer) -> dict[str, str]:
    env = {"CONVEYOR_HOME": str(server.home)}
    write = run_cli("registry", "token", "create", "ci-writer", "--scope", "write", env=env, check=True)
    read = json.loads(
        run_cli("registry", "token", "create", "reader", "--scope", "read", "--json", env=env, check=True).stdout
    )
    return {"write": write.stdout.strip(), "read": read["token"]}


def client_env(server: RegistryServer, tmp_path: Path, token: str | None) -> dict[str, str]:
    env = {"CONVEYOR_REGISTRY": server.url, "CONVEYOR_HOME": str(tmp_path / "client-home")}
    env["CONVEYOR_TOKEN"] = token or ""
    return env


def test_cli_works_against_the_server_with_a_token(
    server: RegistryServer, tokens: dict[str, str], vote_model: Path, tmp_path: Path
) -> None:
    env = client_env(server, tmp_path, tokens["write"])
    out = run_cli(
        "models",
        "register",
        str(vote_model),
        "--name",
        "remote-votes",
        "--alias",
        "production",
        "--json",
        env=env,
        check=True,
    )
    first = json.loads(out.stdout)
    assert first["version"] == 1 and first["aliases"] == ["production"]
    run_cli("models", "register", str(vote_model), "--name", "remote-votes", env=env, check=True)
    listed = json.loads(run_cli("models", "list", "--json", env=env, check=True).stdout)
    assert any(m["name"] == "remote-votes" and m["latest_version"] == 2 for m in listed)
    run_cli("models", "alias", "set", "remote-votes@staging", "2", env=env, check=True)
    shown = json.loads(run_cli("models", "show", "remote-votes@staging", "--json", env=env, check=True).stdout)
    assert shown["version"] == 2
    reader = client_env(server, tmp_path, tokens["read"])
    run_cli("models", "download", "remote-votes@production", "-o", str(tmp_path / "dl"), env=reader, check=True)
    digest = hashlib.sha256((tmp_path / "dl" / "model.onnx").read_bytes()).hexdigest()
    assert digest == hashlib.sha256((vote_model / "model.onnx").read_bytes()).hexdigest()
    # tokens never reach the logs
    log = server.log()
    assert tokens["write"] not in log and tokens["read"] not in log


def test_python_api_is_the_same_against_the_server(
    server: RegistryServer, tokens: dict[str, str], vote_model: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CONVEYOR_REGISTRY", server.url)
    monkeypatch.setenv("CONVEYOR_TOKEN", tokens["write"])
    registry = open_registry()
    assert isinstance(registry, RemoteRegistry)
    version = registry.register(vote_model, "api-votes", tags={"a": "1"})
    assert registry.resolve("api-votes").version == version.version
    assert registry.set_tags("api-votes", version.version, {"b": "2"}, ["a"]) == {"b": "2"}
    registry.set_alias("api-votes", "production", version.version, protect=True)
    second = registry.register(vote_model, "api-votes")
    with pytest.raises(ClientError, match="protected") as refused:
        registry.set_alias("api-votes", "production", second.version)
    assert refused.value.status == 409
    assert registry.resolve("api-votes@production").version == version.version
    with pytest.raises(ClientError, match="aliases point at it"):
        registry.archive_version("api-votes", version.version)


def test_without_a_token_the_cli_fails_with_a_clear_message(
    server: RegistryServer, vote_model: Path, tmp_path: Path
) -> None:
    env = client_env(server, tmp_path, None)
    result = run_cli("models", "list", env=env)
    assert result.returncode == 3
    assert "authentication required" in result.stderr and "CONVEYOR_TOKEN" in result.stderr
    bad = run_cli("models", "list", env=client_env(server, tmp_path, "cvt_not-a-real-token"))
    assert bad.returncode == 3 and "invalid or revoked token" in bad.stderr


def test_a_read_token_cannot_write(
    server: RegistryServer, tokens: dict[str, str], vote_model: Path, tmp_path: Path
) -> None:
    result = run_cli(
        "models", "register", str(vote_model), "--name", "nope", env=client_env(server, tmp_path, tokens["read"])
    )
    assert result.returncode == 3
    assert "read scope" in result.stderr


def test_revoked_tokens_stop_working(server: RegistryServer, tmp_path: Path) -> None:
    env = {"CONVEYOR_HOME": str(server.home)}
    token = run_cli("registry", "token", "create", "temp", "--scope", "read", env=env, check=True).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/api/v1/models", headers=headers).status_code == 200
    run_cli("registry", "token", "revoke", "temp", env=env, check=True)
    assert httpx.get(f"{server.url}/api/v1/models", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/models/..%2F..%2Fetc", 404),  # decoded, it matches no route
        ("GET", "/api/v1/models/..", 404),
        ("GET", "/api/v1/models/a..b", 422),
        ("GET", "/api/v1/models/%01ctl", 422),
        ("GET", "/api/v1/models/does-not-exist", 404),
        ("GET", "/api/v1/models/x/versions/abc", 422),
        ("GET", "/api/v1/resolve?ref=bad%20name", 422),
        ("GET", "/api/v1/blobs/not-a-digest", 422),
        ("GET", "/api/v1/blobs/" + "0" * 64, 404),
        ("GET", "/api/v1/nothing-here", 404),
    ],
)
def test_bad_requests_get_clear_4xx(
    server: RegistryServer, tokens: dict[str, str], method: str, path: str, status: int
) -> None:
    response = httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {tokens['read']}"})
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_uploads_are_verified_and_versions_need_their_blobs(server: RegistryServer, tokens: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {tokens['write']}"}
    wrong = httpx.put(f"{server.url}/api/v1/blobs/{'1' * 64}", content=b"bytes", headers=headers)
    assert wrong.status_code == 422 and "expected sha256" in wrong.json()["error"]
    body = {"files": [{"path": "model.onnx", "sha256": "2" * 64, "size": 5}]}
    missing = httpx.post(f"{server.url}/api/v1/models/ghost/versions", json=body, headers=headers)
    assert missing.status_code == 409 and "has not been uploaded" in missing.json()["error"]
    data = b"some model bytes"
    digest = hashlib.sha256(data).hexdigest()
    assert httpx.put(f"{server.url}/api/v1/blobs/{digest}", content=data, headers=headers).status_code == 201
    traversal = {"files": [{"path": "../../outside", "sha256": digest, "size": len(data)}]}
    refused = httpx.post(f"{server.url}/api/v1/models/ghost/versions", json=traversal, headers=headers)
    assert refused.status_code == 422 and "invalid file path" in refused.json()["error"]
    invalid = httpx.post(f"{server.url}/api/v1/models/ghost/versions", content=b"{", headers=headers)
    assert invalid.status_code == 422


def test_request_bodies_take_json_types_not_lookalikes(server: RegistryServer, tokens: dict[str, str]) -> None:
    """0 is not false and "1" is not a version: a body with the wrong JSON type is refused by name."""
    headers = {"Authorization": f"Bearer {tokens['write']}"}
    data = b"strict body model"
    digest = hashlib.sha256(data).hexdigest()
    httpx.put(f"{server.url}/api/v1/blobs/{digest}", content=data, headers=headers).raise_for_status()
    files = {"files": [{"path": "model.onnx", "sha256": digest, "size": len(data)}]}
    httpx.post(f"{server.url}/api/v1/models/strict/versions", json=files, headers=headers).raise_for_status()
    alias = f"{server.url}/api/v1/models/strict/aliases/production"
    for body, field in [
        ({"version": 1, "protect": 0}, "protect"),
        ({"version": "1"}, "version"),
        ({"version": 1.5}, "version"),
        ({"version": True}, "version"),
    ]:
        refused = httpx.put(alias, json=body, headers=headers)
        assert refused.status_code == 422, refused.text
        assert field in refused.json()["error"]
    tags = httpx.patch(f"{server.url}/api/v1/models/strict/tags", json={"set": {"stage": 1}}, headers=headers)
    assert tags.status_code == 422 and "set.stage" in tags.json()["error"]
    moved = httpx.put(alias, json={"version": 1, "protect": False}, headers=headers)
    assert moved.status_code == 200 and moved.json()["version"] == 1
    # JSON Schema's integer is a number with no fraction: 1.0 is version 1 (schemathesis sends it)
    whole = httpx.put(alias, content=b'{"version": 1.0}', headers={**headers, "Content-Type": "application/json"})
    assert whole.status_code == 200 and whole.json()["version"] == 1


def test_serve_a_reference_from_the_remote_registry(
    server: RegistryServer, tokens: dict[str, str], vote_model: Path, tmp_path: Path, monkeypatch
) -> None:
    from tests.conftest import start_server

    monkeypatch.setenv("CONVEYOR_REGISTRY", server.url)
    monkeypatch.setenv("CONVEYOR_TOKEN", tokens["write"])
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "serving-home"))
    open_registry().register(vote_model, "served-remote", aliases=["production"])
    served = start_server("served-remote@production", tmp_path=tmp_path)
    try:
        assert httpx.post(f"{served.url}/predict", json=["great"]).json() == {"positive": True}
    finally:
        served.stop()
