"""What ``conveyor verify TARGET`` checks: a running server, a model served for the run, or an image.

* ``http(s)://host:port``: a server that is already running;
* a model folder, an ``.onnx`` file or a registry reference: served with
  ``conveyor serve`` on a free loopback port for the checks, stopped after;
* an image (``--image``, or a name with a registry host such as
  ``localhost/sentiment:1``): started with podman or docker, removed after.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conveyor.containers import UNDER_TEST, free_port, image_labels, serving_image
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.launch import conveyor_argv
from conveyor.readiness import wait_until_ready
from conveyor.registry.refs import looks_like_ref, parse_ref


@dataclass
class Running:
    url: str
    model_name: str | None  # for the v2 checks, when we know it
    model_ref: str | None = None
    model_path: Path | None = None
    image: str | None = None


def looks_like_image(target: str) -> bool:
    first = target.split("/", 1)[0]
    return "/" in target and ("." in first or ":" in first or first == "localhost")


@contextmanager
def serve_model(target: str, timeout: float, on_notice: Callable[[str], None] | None = None) -> Iterator[Running]:
    """Serve a model folder, ONNX file or registry reference with ``conveyor serve`` for the checks.

    A bare name that is both a folder and a registered model is decided once here (``model_choice``),
    ``on_notice`` told which, and the server given the unambiguous form (the absolute path or NAME:N)."""
    from conveyor.serving.model_choice import choose
    from conveyor.serving.spec import resolve_model

    choice = choose(target)
    if choice.notice and on_notice is not None:
        on_notice(choice.notice)
    if not choice.from_registry:
        name: str | None = resolve_model(target).spec.name if Path(target).is_dir() else Path(target).stem
        model_ref = None
        target = str(Path(target).absolute())
    else:
        name = parse_ref(choice.target).name
        model_ref = target = choice.target
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="conveyor-verify-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        conveyor_argv("serve", target, "--port", str(port), "--log-level", "warning"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def logs() -> str:
        return Path(log.name).read_text(errors="replace")[-3000:]

    try:
        wait_until_ready(url, lambda: process.poll() is None, logs, timeout, UNDER_TEST)
        model_path = None
        if model_ref is not None:
            from conveyor.registry.config import open_registry

            _, model_path = open_registry().cached(model_ref)
        yield Running(url, name, model_ref, model_path)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        os.unlink(log.name)


@contextmanager
def run_image(image: str, timeout: float, container_port: int = 5000) -> Iterator[Running]:
    """Start the image on a loopback port, wait for readiness, remove the container afterwards."""
    with serving_image(image, timeout, container_port) as (url, engine, _):
        try:
            name = image_labels(engine, image).get("ai.conveyor.model.name")
        except ConveyorError:
            name = None  # the checks that need the labels say so themselves
        yield Running(url, name, image=image)


@contextmanager
def open_target(
    target: str, image: bool = False, timeout: float = 120, on_notice: Callable[[str], None] | None = None
) -> Iterator[Running]:
    if target.startswith(("http://", "https://")):
        yield Running(target.rstrip("/"), None)
    elif image or (not Path(target).exists() and looks_like_image(target)):
        with run_image(target, timeout) as running:
            yield running
    elif Path(target).exists() or looks_like_ref(target):
        with serve_model(target, timeout, on_notice) as running:
            yield running
    else:
        raise InvalidInput(f"{target!r} is not a URL, a model path, a registry reference or an image")
