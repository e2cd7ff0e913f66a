"""buildah: builds (and pushes) into podman's image storage; it runs no containers."""

from __future__ import annotations

from conveyor.engines.base import LAYER_RACE, Engine, engine


@engine
class Buildah(Engine):
    name = "buildah"
    order = 30
    runs_containers = False
    storage = "podman"  # containers/storage, shared with podman: podman finds what buildah built
    transient_build_errors = (LAYER_RACE,)

    def inspect_command(self, image: str) -> list[str]:
        return ["buildah", "inspect", image]
