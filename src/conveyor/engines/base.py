"""What a container engine is to Conveyor: a few command lines, and how it pushes.

Compare BentoML's container backends: one class per engine, the differences as data
(``runs_containers``, ``storage``) or as one method each, never as ``if name == ...`` elsewhere.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError


def tls_flags(tls_verify: bool | None) -> list[str]:
    """podman's or buildah's --tls-verify, only when the user chose: None leaves it to the engine's
    registries.conf (a registry marked insecure there is reached over plain HTTP, as the engine would)."""
    return [] if tls_verify is None else [f"--tls-verify={'true' if tls_verify else 'false'}"]


@dataclass(frozen=True)
class TransientBuildError:
    """A build failure the engine is known to recover from when the same build runs again."""

    marker: str  # a line of the build's output that contains this
    why: str  # one line for the user


#: buildah (podman's builder) before 1.43: a cache lookup that meets an image another build or
#: ``rmi`` removed at that moment fails instead of skipping it (containers/buildah#5674)
LAYER_RACE = TransientBuildError(
    "layer not known", "the build's cache lookup raced an image removal (buildah#5674, fixed in buildah 1.43)"
)


class Engine:
    """Subclass, set ``name`` (and the class attributes that differ), decorate with ``@engine``."""

    name: str = ""
    order: int = 50  # preference when the user names no engine (lower first)
    runs_containers: bool = True  # it can run images (verification, rollouts of --image)
    #: the engine whose image store holds what this one builds (buildah builds into podman's storage)
    storage: str = ""
    transient_build_errors: tuple[TransientBuildError, ...] = ()

    @property
    def command(self) -> str:
        return self.name

    @property
    def store(self) -> str:
        """The command that finds, runs and inspects by id the images this engine built."""
        return self.storage or self.command

    def build_command(self, context: Path, tag: str, platform: str | None) -> list[str]:
        """Build ``context`` into ``tag``, in the docker image format (it keeps HEALTHCHECK, OCI's cannot)."""
        command = [self.command, "build", "--format", "docker", "-t", tag]
        return [*command, *(["--platform", platform] if platform else []), str(context)]

    def inspect_command(self, image: str) -> list[str]:
        return [self.command, "inspect", "--type", "image", image]

    def push(
        self, image: str, target: str, tls_verify: bool | None, username: str | None, password: str | None
    ) -> None:
        """Push ``image`` to ``target`` on any OCI registry (podman's and buildah's way: one command)."""
        command = [self.command, "push", *tls_flags(tls_verify)]
        if username and password:
            command += ["--creds", f"{username}:{password}"]
        prefix = "" if "://" in target else "docker://"
        run_or_fail([*command, image, prefix + target], f"push of {image} to {target}", secret=password)


def run_or_fail(command: list[str], what: str, stdin: str | None = None, secret: str | None = None) -> None:
    """Run ``command``; ConveyorError with its last words (``secret`` masked) when it fails."""
    result = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        message = result.stderr.strip().replace(secret or "\0", "***")
        raise ConveyorError(f"{what} failed: {message[-800:]}")


_ENGINES: dict[str, Engine] = {}


def engine(cls: type[Engine]) -> type[Engine]:
    """Register an Engine subclass (one instance) under its ``name``."""
    if not cls.name or cls.name in _ENGINES:
        raise ValueError(f"engine {cls.name!r} needs a unique name")
    _ENGINES[cls.name] = cls()
    return cls


def registered() -> dict[str, Engine]:
    return _ENGINES
