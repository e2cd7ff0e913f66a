"""``conveyor package``, ``conveyor build`` and ``conveyor smoke``: a registered version as an OCI image."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.output import EXIT_FAILURE, ProgressBar, handle_errors, print_json, stderr, stdout
from conveyor.packaging import DEFAULT_BASE
from conveyor.registry.config import open_registry

if TYPE_CHECKING:
    from conveyor.registry.records import ModelVersion

BaseImage = Annotated[str, typer.Option("--base-image", help="Image to build FROM (needs python3 with venv).")]
Platform = Annotated[str, typer.Option(help="Target platform: linux/amd64 or linux/arm64.")]


def _context(ref: str, out: Path, base_image: str, platform: str, title: str | None) -> ModelVersion:
    from conveyor.packaging.context import default_wheelhouse, write_context

    registry = open_registry()
    with ProgressBar() as bar:
        version, folder = registry.cached(ref, bar)
        write_context(version, folder, out, base_image, platform, title, default_wheelhouse(), bar)
    return version


def package(
    ref: Annotated[str, typer.Argument(help="Registry reference: name, name:version or name@alias.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="New folder for the build context.")],
    base_image: BaseImage = DEFAULT_BASE,
    platform: Platform = "linux/amd64",
) -> None:
    """Write a complete build context: Dockerfile, hashed requirements + wheels, the model, the server."""
    with handle_errors():
        _context(ref, out, base_image, platform, None)
    stdout.print(f"build context for {ref} in {out}: Dockerfile, requirements.txt, wheels/, model/, app/")


def build(
    ref: Annotated[str, typer.Argument(help="Registry reference: name, name:version or name@alias.")],
    tag: Annotated[str, typer.Option("--tag", "-t", help="Image name, e.g. ghcr.io/org/sentiment:3.")],
    builder: Annotated[str | None, typer.Option(help="podman, docker or buildah [default: the first found].")] = None,
    base_image: BaseImage = DEFAULT_BASE,
    platform: Platform = "linux/amd64",
    do_push: Annotated[bool, typer.Option("--push", help="Push the image after building it.")] = False,
    push_to: Annotated[str | None, typer.Option(help="Push under this name instead of --tag.")] = None,
    tls_verify: Annotated[bool, typer.Option("--tls-verify/--no-tls-verify", help="Verify the registry's TLS.")] = True,
    context_dir: Annotated[Path | None, typer.Option("--context", help="Keep the build context here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Build REF into an image with a real builder, stream its output, optionally push it.

    Push credentials: CONVEYOR_REGISTRY_USERNAME / CONVEYOR_REGISTRY_PASSWORD (CI secrets), or a
    prior `podman login` / `docker login`."""
    from rich.status import Status

    from conveyor.packaging.builders import build as run_build
    from conveyor.packaging.builders import detect_builder, push

    with handle_errors():
        engine = detect_builder(builder)
        with tempfile.TemporaryDirectory(prefix="conveyor-build-") as tmp:
            out = context_dir or Path(tmp) / "context"
            version = _context(ref, out, base_image, platform, tag)
            with Status(f"{engine} build {tag}", console=stderr.rich()) as status:
                image = run_build(
                    out,
                    tag,
                    engine,
                    platform if platform != "linux/amd64" else None,
                    on_line=lambda line: status.update(f"{engine} build {tag}: {line[:100]}"),
                )
        pushed = push(tag, engine, push_to, tls_verify) if do_push else None
        if pushed:  # the registry remembers which image carries the version (the dashboard shows it)
            open_registry().set_tags(version.name, version.version, {"image": pushed}, [])
    result = {
        "image": image.reference,
        "id": image.image_id,
        "size_bytes": image.size,
        "build_seconds": round(image.seconds, 1),
        "builder": image.builder,
        "pushed": pushed,
    }
    if as_json:
        print_json(result)
        return
    stdout.print(
        f"built [bold]{image.reference}[/bold] id {image.image_id[:12]} "
        f"{image.size / 2**20:.0f} MiB in {image.seconds:.1f}s with {image.builder}"
    )
    if pushed:
        stdout.print(f"pushed {pushed}")


def smoke(
    image: Annotated[str, typer.Argument(help="The image to start.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 120,
) -> None:
    """Start IMAGE, wait for readiness, call /predict and the v2 health routes, then remove it."""
    from conveyor.packaging.smoke import smoke as run_smoke

    with handle_errors():
        result = run_smoke(image, timeout)
    for name, passed, detail in result.steps:
        mark = "[green]ok[/green]" if passed else "[red]FAILED[/red]"
        stdout.print(f"{mark} {name}: {detail}", highlight=False)
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)
