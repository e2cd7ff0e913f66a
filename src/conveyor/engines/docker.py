"""docker: the daemon's BuildKit builds; logins and TLS settings belong to the daemon."""

from __future__ import annotations

from pathlib import Path

from conveyor.engines.base import Engine, engine, run_or_fail
from conveyor.errors import ConveyorError


@engine
class Docker(Engine):
    name = "docker"
    order = 20

    def build_command(self, context: Path, tag: str, platform: str | None) -> list[str]:
        # docker's images keep HEALTHCHECK already; RUN --mount needs BuildKit (DOCKER_BUILDKIT=1)
        return ["docker", "build", "-t", tag, *(["--platform", platform] if platform else []), str(context)]

    def push(
        self, image: str, target: str, tls_verify: bool | None, username: str | None, password: str | None
    ) -> None:
        if tls_verify is False:
            raise ConveyorError(
                "docker reads TLS settings from its daemon (insecure-registries); "
                "--no-tls-verify needs podman or buildah"
            )
        if username and password:
            login = ["docker", "login", "--username", username, "--password-stdin", target.split("/", 1)[0]]
            run_or_fail(login, "docker login", stdin=password, secret=password)
        if target != image:
            run_or_fail(["docker", "tag", image, target], f"docker tag {image} {target}")
        run_or_fail(["docker", "push", target], f"push of {image} to {target}", secret=password)
