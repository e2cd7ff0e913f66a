"""The controller's edges: what it asks of the world outside its record, and the real answers.

The router (``RouterClient`` over the admin API), the backends (``conveyor serve`` processes or
containers), the clock and the alias mover are parameters of :class:`~conveyor.rollout.controller.Controller`;
these are the defaults, and ``tests/rollout_fakes.py`` has in-memory stand-ins for each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from conveyor.errors import ConveyorError
from conveyor.rollout import backends
from conveyor.rollout.status import Backend, RolloutStatus
from conveyor.router.routing import RouteTable

CANARY = "canary"  # the backend name of the version being rolled out


class Router(Protocol):
    """What the controller asks of the router (``RouterClient`` over its admin API)."""

    def routes(self) -> RouteTable: ...
    def set_routes(self, table: RouteTable) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class Backends(Protocol):
    """Starting, watching and stopping the processes or containers that serve a version."""

    def launch(self, status: RolloutStatus, log_dir: Path) -> Backend: ...
    def wait_ready(self, backend: Backend, timeout: float) -> None: ...
    def alive(self, backend: Backend) -> bool: ...
    def ready(self, backend: Backend) -> bool: ...
    def stop(self, backend: Backend, grace: float) -> None: ...


class Clock(Protocol):
    def time(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class LocalBackends:
    """The real launcher: ``conveyor serve`` processes, or containers for image rollouts."""

    def launch(self, status: RolloutStatus, log_dir: Path) -> Backend:
        ref, version = status.canary.ref, status.canary.version
        if status.canary.kind == "container":
            return backends.start_container(ref, version, f"conveyor-{status.service}-{status.id}")
        return backends.start_process(ref, version, log_dir, CANARY, status.command, status.trusted_keys)

    def wait_ready(self, backend: Backend, timeout: float) -> None:
        backends.wait_ready(backend, timeout)

    def alive(self, backend: Backend) -> bool:
        return backends.alive(backend)

    def ready(self, backend: Backend) -> bool:
        return backends.ready(backend)

    def stop(self, backend: Backend, grace: float) -> None:
        backends.stop(backend, grace=grace)


class SystemClock:
    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def registry_alias_mover(alias: str) -> Callable[[RolloutStatus], str | None]:
    """Move ``name@alias`` to the promoted version (only for versions that came from the registry)."""

    def move(status: RolloutStatus) -> str | None:
        if status.model_name is None or status.model_version is None:
            return None
        from conveyor.registry.config import open_registry

        try:
            registry = open_registry()
            registry.set_alias(status.model_name, alias, status.model_version, force=True)
        except ConveyorError as exc:
            return f"could not move {status.model_name}@{alias}: {exc}"
        return f"{status.model_name}@{alias} -> version {status.model_version}"

    return move
