"""podman: builds, runs and pushes without a daemon; Conveyor's first choice."""

from __future__ import annotations

from conveyor.engines.base import LAYER_RACE, Engine, engine


@engine
class Podman(Engine):
    name = "podman"
    order = 10
    transient_build_errors = (LAYER_RACE,)
