"""Start, watch and stop the model-server backends a rollout sends traffic to.

A backend runs detached from the controller (its own session, its own log file)
so that a controller killed mid-rollout leaves traffic flowing; the status
record keeps its pid or container name, which is all a restarted controller
needs to find it again.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from conveyor import containers
from conveyor.containers import container_engine, free_port
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.launch import conveyor_argv, spawn_detached
from conveyor.readiness import readiness, wait_until_ready
from conveyor.rollout.status import Backend


def start_process(
    ref: str, version: str, log_dir: Path, role: str, command: str | None = None, trusted_keys: Sequence[str] = ()
) -> Backend:
    """``conveyor serve REF`` (or a custom command template with {port} and {ref}) on a free loopback port.

    ``trusted_keys`` go to ``conveyor serve --trusted-key``: a registry whose policy asks for signed
    versions then gets the keys the rollout's gate checked, not only $CONVEYOR_TRUSTED_KEYS."""
    port = free_port()
    if command:
        try:
            argv = shlex.split(command.format(port=port, ref=ref, version=version))
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidInput(f"invalid backend command {command!r}: {exc}") from None
    else:
        keys = [arg for key in trusted_keys for arg in ("--trusted-key", key)]
        argv = conveyor_argv("serve", ref, "--host", "127.0.0.1", "--port", str(port), *keys)
    log = log_dir / f"{role}-{version.replace(':', '-').replace('/', '_')}-{port}.log"
    try:
        process = spawn_detached(argv, log)
    except OSError as exc:
        raise ConveyorError(f"cannot start the {role} backend ({argv[0]}): {exc}") from None
    return Backend(ref=ref, version=version, url=f"http://127.0.0.1:{port}", pid=process.pid, log=str(log))


def start_container(image: str, version: str, name: str, container_port: int = 5000) -> Backend:
    port = free_port()
    engine = containers.run_detached(image, name, port, container_port)
    return Backend(
        ref=image, version=version, kind="container", url=f"http://127.0.0.1:{port}", container=name, engine=engine
    )


def _zombie_or_gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        if done == pid:
            return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def alive(backend: Backend) -> bool:
    """Whether the backend's process or container still runs (an external backend counts as alive)."""
    if backend.pid is not None:
        return not _zombie_or_gone(backend.pid)
    if backend.container is not None:
        return containers.is_running(backend.engine or container_engine(), backend.container)
    return True


def ready(backend: Backend, timeout: float = 2.0) -> bool:
    return backend.url is not None and readiness(backend.url, timeout) is None


def log_tail(backend: Backend, lines: int = 15) -> str:
    if backend.log:
        with contextlib.suppress(OSError):
            return "\n".join(Path(backend.log).read_text(errors="replace").splitlines()[-lines:])
    if backend.container:
        return containers.logs(backend.engine or container_engine(), backend.container, tail=lines)
    return ""


def wait_ready(backend: Backend, timeout: float) -> None:
    what = f"the backend for {backend.version}"
    if backend.url is None:
        raise ConveyorError(f"{what} has no address to wait on")
    wait_until_ready(backend.url, lambda: alive(backend), lambda: log_tail(backend), timeout, what)


def stop(backend: Backend, grace: float = 10.0) -> None:
    """SIGTERM (the server finishes in-flight requests), SIGKILL after ``grace`` seconds. Idempotent."""
    if not backend.owned:
        return
    if backend.container is not None:
        containers.stop(backend.engine or container_engine(), backend.container, grace)
        return
    if backend.pid is None or _zombie_or_gone(backend.pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(backend.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if _zombie_or_gone(backend.pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(backend.pid, signal.SIGKILL)
