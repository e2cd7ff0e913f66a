"""Container engines: one table, each engine's command lines, and the choice when none is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import engines
from conveyor.engines.base import LAYER_RACE
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.packaging import builders


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


class _Flaky(engines.Engine):
    """An engine whose build fails with buildah's layer race ``failures`` times, then succeeds."""

    name = "flaky"
    transient_build_errors = (LAYER_RACE,)

    def __init__(self, counter: Path, failures: int, message: str = "layer not known") -> None:
        self.counter, self.failures, self.message = counter, failures, message

    def build_command(self, context: Path, tag: str, platform: str | None) -> list[str]:
        script = f"""n=$(cat {self.counter} 2>/dev/null || echo 0); echo $((n + 1)) > {self.counter}
        echo "STEP 5/14: COPY model/ /model/"
        if [ "$n" -lt {self.failures} ]; then echo "Error: getting top layer info: {self.message}"; exit 1; fi"""
        return ["sh", "-c", script]

    def inspect_command(self, image: str) -> list[str]:
        return ["echo", '[{"Id": "sha256:abc", "Size": 5}]']


@pytest.mark.parametrize(
    ("failures", "message", "builds", "fails"),
    [(2, "layer not known", 3, False), (3, "layer not known", 3, True), (1, "no space left on device", 1, True)],
)
def test_a_build_that_meets_buildahs_layer_race_runs_again_and_nothing_else_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int, message: str, builds: int, fails: bool
) -> None:
    counter = tmp_path / "builds"
    monkeypatch.setattr(builders.engines, "get_engine", lambda name: _Flaky(counter, failures, message))
    lines: list[str] = []
    if fails:
        with pytest.raises(ConveyorError, match=f"(?s)flaky build failed:.*{message}"):
            builders.build(tmp_path, "m:1", "flaky", on_line=lines.append)
    else:
        built = builders.build(tmp_path, "m:1", "flaky", on_line=lines.append)
        assert built.image_id == "sha256:abc"
    assert int(counter.read_text()) == builds
    retried = [line for line in lines if "building again" in line]
    assert len(retried) == (builds - 1) and all("buildah#5674" in line for line in retried)
