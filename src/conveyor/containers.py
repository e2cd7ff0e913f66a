"""Containers and loopback ports: the one place Conveyor runs podman or docker.

Verification starts an image for its checks, ``package smoke`` calls one, a rollout runs a
new version as a container backend; all of them need the same few things: which engine is
installed, run an image detached on a free loopback port, ask whether it still runs, read
its logs and labels, stop and remove it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.engines.base import tls_flags
from conveyor.errors import ConveyorError

UNDER_TEST = "the server under test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def container_engine() -> str:
    """The first installed engine that runs containers (podman, else docker); a clear error when none is."""
    from conveyor.engines import runner

    return runner().command


def run_detached(image: str, name: str, port: int, container_port: int = 5000, engine: str | None = None) -> str:
    """Start ``image`` as container ``name`` (replacing one of that name) on 127.0.0.1:``port``; the engine."""
    engine = engine or container_engine()
    subprocess.run([engine, "rm", "-f", name], capture_output=True, check=False)
    started = subprocess.run(
        [engine, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise ConveyorError(f"{engine} run {image} failed: {started.stderr.strip()}")
    return engine


def is_running(engine: str, name: str) -> bool:
    state = subprocess.run(
        [engine, "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True, check=False
    )
    return state.stdout.strip() == "true"


def logs(engine: str, name: str, tail: int | None = None) -> str:
    """What the container printed (its stdout and stderr, interleaved as the engine keeps them)."""
    argv = [engine, "logs", *(["--tail", str(tail)] if tail else []), name]
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return result.stdout.strip()


def image_labels(engine: str, image: str) -> dict[str, str]:
    """The image's OCI labels ({} when it has none); ConveyorError when the engine cannot inspect it."""
    for attempt in range(3):  # podman's storage lock can refuse an inspect while images are being built
        result = subprocess.run(
            [engine, "inspect", "-f", "{{json .Config.Labels}}", image], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            try:
                return json.loads(result.stdout) or {}
            except json.JSONDecodeError:
                return {}
        time.sleep(0.5 * (attempt + 1))
    raise ConveyorError(f"{engine} cannot inspect {image}: {result.stderr.strip()}")


def stop(engine: str, name: str, grace: float = 10.0) -> None:
    """Stop (SIGTERM, then SIGKILL after ``grace`` seconds) and remove the container. Idempotent."""
    subprocess.run([engine, "stop", "-t", str(int(grace)), name], capture_output=True, check=False)
    remove(engine, name)


def remove(engine: str, name: str) -> None:
    subprocess.run([engine, "rm", "-f", name], capture_output=True, check=False)


@contextmanager
def serving_image(image: str, timeout: float, container_port: int = 5000) -> Iterator[tuple[str, str, str]]:
    """Run a model-server image until it is ready; yields (url, engine, container name); removed after."""
    from conveyor.readiness import wait_until_ready

    port = free_port()
    name = f"conveyor-run-{port}"
    engine = run_detached(image, name, port, container_port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, lambda: is_running(engine, name), lambda: logs(engine, name)[-3000:], timeout, UNDER_TEST)
        yield url, engine, name
    finally:
        remove(engine, name)


def image_id(engine: str, image: str) -> str | None:
    """The image's id (its config digest, the same after a push and a pull) as 64 hex digits; None if absent."""
    try:
        result = subprocess.run([engine, "image", "inspect", "-f", "{{.Id}}", image], capture_output=True, text=True)
    except OSError:  # the engine is not installed (a buildah-only machine asking podman)
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip().removeprefix("sha256:") or None


def pull(engine: str, image: str, tls_verify: bool | None = None) -> str | None:
    """Pull ``image``; None when it worked, else the engine's last line saying why."""
    pulled = subprocess.run(
        [engine, "pull", "-q", *tls_flags(tls_verify), image],
        capture_output=True,
        text=True,
    )
    if pulled.returncode == 0:
        return None
    lines = pulled.stderr.strip().splitlines()
    return lines[-1][-300:] if lines else f"exit {pulled.returncode}"


def copy_out(engine: str, image: str, paths: dict[str, str]) -> dict[str, bytes | None]:
    """Read files out of an image without running it: {path in image: bytes, or None when absent}."""
    import tempfile
    from pathlib import Path

    created = subprocess.run([engine, "create", image, "unused"], capture_output=True, text=True)
    if created.returncode != 0:
        raise ConveyorError(f"{engine} create {image} failed: {created.stderr.strip()}")
    container = created.stdout.strip().splitlines()[-1]
    found: dict[str, bytes | None] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="conveyor-copy-") as tmp:
            for name, path in paths.items():
                target = Path(tmp) / name
                copied = subprocess.run([engine, "cp", f"{container}:{path}", str(target)], capture_output=True)
                found[path] = target.read_bytes() if copied.returncode == 0 and target.is_file() else None
    finally:
        remove(engine, container)
    return found
