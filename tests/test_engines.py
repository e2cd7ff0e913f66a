"""Container engines: one table, each engine's command lines, and the choice when none is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import engines
from conveyor.errors import ConveyorError, InvalidInput


def test_the_engines_are_one_list_in_their_order_of_preference() -> None:
    assert [e.name for e in engines.all_engines()] == ["podman", "docker", "buildah"]
    assert [e.name for e in engines.all_engines() if e.runs_containers] == ["podman", "docker"]
    with pytest.raises(InvalidInput, match="unknown builder 'kaniko': use one of podman, docker, buildah"):
        engines.get_engine("kaniko")


def test_each_engine_builds_in_the_format_that_keeps_the_health_check(tmp_path: Path) -> None:
    podman, docker, buildah = (engines.get_engine(n) for n in ("podman", "docker", "buildah"))
    assert podman.build_command(tmp_path, "m:1", None) == [
        "podman",
        "build",
        "--format",
        "docker",
        "-t",
        "m:1",
        str(tmp_path),
    ]
    assert buildah.build_command(tmp_path, "m:1", "linux/arm64")[:6] == [
        "buildah",
        "build",
        "--format",
        "docker",
        "-t",
        "m:1",
    ]
    assert "--platform" in buildah.build_command(tmp_path, "m:1", "linux/arm64")
    assert docker.build_command(tmp_path, "m:1", None) == ["docker", "build", "-t", "m:1", str(tmp_path)]
    assert buildah.inspect_command("m:1") == ["buildah", "inspect", "m:1"]
    assert buildah.store == "podman" and podman.store == "podman" and docker.store == "docker"


def test_docker_refuses_a_tls_choice_its_daemon_makes() -> None:
    with pytest.raises(ConveyorError, match="--no-tls-verify needs podman or buildah"):
        engines.get_engine("docker").push("m:1", "127.0.0.1:5000/m:1", False, None, None)


def test_the_first_installed_engine_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"docker", "buildah"}
    monkeypatch.setattr(engines.shutil, "which", lambda name: f"/usr/bin/{name}" if name in installed else None)
    assert engines.builder().name == "docker" and engines.runner().name == "docker"
    with pytest.raises(ConveyorError, match="the builder podman is not installed"):
        engines.builder("podman")
    installed = {"buildah"}
    assert engines.builder().name == "buildah"
    with pytest.raises(ConveyorError, match="running an image needs podman or docker; none is installed"):
        engines.runner()
    installed = set()
    with pytest.raises(ConveyorError, match="no image builder found: install podman, docker or buildah"):
        engines.builder()
