"""podman: builds, runs and pushes without a daemon; Conveyor's first choice."""

from __future__ import annotations

from conveyor.engines.base import Engine, engine


@engine
class Podman(Engine):
    name = "podman"
    order = 10
