"""buildah: builds (and pushes) into podman's image storage; it runs no containers."""

from __future__ import annotations

from conveyor.engines.base import Engine, engine


@engine
class Buildah(Engine):
    name = "buildah"
    order = 30
    runs_containers = False
    storage = "podman"  # containers/storage, shared with podman: podman finds what buildah built

    def inspect_command(self, image: str) -> list[str]:
        return ["buildah", "inspect", image]
