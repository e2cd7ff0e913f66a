"""The image.agreement check: an image's model labels, the registry and the served model agree."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.registry.config import open_local
from conveyor.verify.checks import Context, builtin_checks, run_check
from conveyor.verify.contract import Contract
from tests.conftest import Server, start_server
from tests.machine import tool


@pytest.fixture(autouse=True)
def _podman() -> None:
    tool("podman")


def _labelled_image(tmp_path: Path, labels: dict[str, str]) -> Iterator[str]:
    """An image holding nothing but the labels (FROM scratch: built in a second)."""
    tag = f"localhost/conveyor-labels-{uuid.uuid4().hex[:8]}:test"
    lines = ["FROM scratch", *[f'LABEL "{key}"="{value}"' for key, value in labels.items()]]
    (tmp_path / "Containerfile").write_text("\n".join(lines) + "\n")
    subprocess.run(["podman", "build", "-q", "-t", tag, str(tmp_path)], check=True, capture_output=True)
    try:
        yield tag
    finally:
        subprocess.run(["podman", "rmi", tag], capture_output=True)


@pytest.fixture
def served(tmp_path: Path, conveyor_home: Path, vote_model: Path) -> Iterator[tuple[Server, str]]:
    """votes:1 registered here and served as votes version 1."""
    version = open_local().register(vote_model, "votes")
    server = start_server(vote_model, "--name", "votes", "--model-version", "1", tmp_path=tmp_path)
    yield server, f"sha256:{version.digest}"
    server.stop()


def _result(server: Server, image: str | None):  # type: ignore[no-untyped-def]
    item = next(c for c in builtin_checks(Contract()) if c.id == "image.agreement")
    ctx = Context(server.url, Contract(), image=image)
    try:
        return run_check(item, ctx)
    finally:
        ctx.close()


def _labels(name: str = "votes", version: str = "1", digest: str = "") -> dict[str, str]:
    return {"ai.conveyor.model.name": name, "ai.conveyor.model.version": version, "ai.conveyor.model.digest": digest}


def test_labels_registry_and_server_that_agree_pass(served: tuple[Server, str], tmp_path: Path) -> None:
    server, digest = served
    for image in _labelled_image(tmp_path, _labels(digest=digest)):
        result = _result(server, image)
        assert result.status == "passed", result.message
        assert "votes:1" in result.message


def test_a_digest_label_the_registry_disagrees_with_fails(served: tuple[Server, str], tmp_path: Path) -> None:
    server, _ = served
    for image in _labelled_image(tmp_path, _labels(digest="sha256:" + "0" * 64)):
        result = _result(server, image)
        assert result.status == "failed"
        assert "the registry says sha256:" in result.message


def test_a_version_the_container_does_not_serve_fails(served: tuple[Server, str], tmp_path: Path) -> None:
    server, digest = served
    for image in _labelled_image(tmp_path, _labels(version="3", digest=digest)):
        result = _result(server, image)
        assert result.status == "failed" and "serves votes versions ['1']" in result.message


def test_an_image_without_conveyor_labels_fails(served: tuple[Server, str], tmp_path: Path) -> None:
    server, _ = served
    for image in _labelled_image(tmp_path, {"org.opencontainers.image.title": "something"}):
        result = _result(server, image)
        assert result.status == "failed" and "not built by `conveyor build`" in result.message


def test_skipped_without_an_image_or_a_registry_that_knows_the_model(
    served: tuple[Server, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, digest = served
    assert _result(server, None).status == "skipped"
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "elsewhere"))
    for image in _labelled_image(tmp_path, _labels(digest=digest)):
        result = _result(server, image)
        assert result.status == "skipped" and "does not know model 'votes'" in result.message, result.message
