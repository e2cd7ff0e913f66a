"""Building, inspecting and pushing images with a real engine (:mod:`conveyor.engines`: podman,
docker, buildah): streaming the build's output, the base-image hint, the image's labels."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conveyor import engines
from conveyor.errors import ConveyorError


@dataclass(frozen=True)
class BuiltImage:
    reference: str
    image_id: str
    size: int
    seconds: float
    builder: str


def detect_builder(preferred: str | None = None) -> str:
    """The name of the engine to build with: the one named (installed), else the first installed."""
    return engines.builder(preferred).name


def image_reference(tag: str) -> str:
    """``tag`` with its repository lower-cased, as OCI requires (``ghcr.io/Acme/m:1`` -> ``ghcr.io/acme/m:1``).

    CI often builds names from an owner's display case (GitHub's ``repository_owner``)."""
    name, colon, version = tag.rpartition(":")
    if not colon or "/" in version:  # no tag at all, only a registry port
        return tag.lower()
    return f"{name.lower()}:{version}"


PULL_FAILURES = (
    "lookup ",
    "no such host",
    "dial tcp",
    "connection refused",
    "i/o timeout",
    "TLS handshake",
    "manifest unknown",
    "pull access denied",
    "unauthorized",
    "initializing source",
    "name unknown",
)


def _base_image_hint(context: Path, tail: list[str]) -> str:
    """What to do when the FROM image could not be pulled (no Docker Hub here, a typo, no login)."""
    dockerfile = context / "Dockerfile"
    base = (
        next(
            (line.split()[1] for line in dockerfile.read_text().splitlines() if line.upper().startswith("FROM ")), None
        )
        if dockerfile.is_file()
        else None
    )
    text = "\n".join(tail)
    if base is None or not any(sign in text for sign in PULL_FAILURES):
        return ""
    return (
        f"\nthe base image {base} could not be pulled: build from one this machine has with "
        "--base-image IMAGE, e.g. one made from Debian's packages by "
        "`sudo conveyor base-image` (localhost/conveyor-base:bookworm)"
    )


def build(
    context: Path, tag: str, builder: str, platform: str | None = None, on_line: Callable[[str], None] | None = None
) -> BuiltImage:
    """Run the builder, streaming its output line by line; a build its engine calls a known race is
    run again (at most ``BUILD_ATTEMPTS`` times): every step is cached, so a retry costs seconds."""
    tag = image_reference(tag)
    engine = engines.get_engine(builder)
    started = time.perf_counter()
    for attempt in range(1, BUILD_ATTEMPTS + 1):
        status, tail = _run_build(engine.build_command(context, tag, platform), on_line)
        if status == 0:
            break
        race = next((r for r in engine.transient_build_errors if any(r.marker in line for line in tail)), None)
        if race is None or attempt == BUILD_ATTEMPTS:
            raise ConveyorError(f"{builder} build failed:\n" + "\n".join(tail) + _base_image_hint(context, tail))
        if on_line:
            on_line(f"conveyor: {race.why}; building again ({attempt + 1}/{BUILD_ATTEMPTS})")
    seconds = time.perf_counter() - started
    info = inspect(tag, builder)
    return BuiltImage(tag, info.get("Id", ""), int(info.get("Size", 0)), seconds, builder)


BUILD_ATTEMPTS = 3


def _run_build(command: list[str], on_line: Callable[[str], None] | None) -> tuple[int, list[str]]:
    """One build: its exit status and its last 30 lines."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}  # RUN --mount needs BuildKit on docker
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        tail = ([*tail, line.rstrip()])[-30:]
        if on_line:
            on_line(line.rstrip())
    return process.wait(), tail


def inspect(image: str, builder: str) -> dict:
    result = subprocess.run(engines.get_engine(builder).inspect_command(image), capture_output=True, text=True)
    if result.returncode != 0:
        raise ConveyorError(f"cannot inspect {image}: {result.stderr.strip()}")
    data = json.loads(result.stdout)
    return data[0] if isinstance(data, list) else data


def push(
    image: str,
    builder: str,
    destination: str | None = None,
    tls_verify: bool | None = None,
    username: str | None = None,
    password: str | None = None,
) -> str:
    """Push to any OCI registry; credentials from arguments or CONVEYOR_REGISTRY_USERNAME/PASSWORD."""
    username = username or os.environ.get("CONVEYOR_REGISTRY_USERNAME")
    password = password or os.environ.get("CONVEYOR_REGISTRY_PASSWORD")
    target = destination or image
    engines.get_engine(builder).push(image, target, tls_verify, username, password)
    return target
