"""``conveyor package``, ``conveyor build`` and ``conveyor smoke``: a registered version as an OCI image."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.output import EXIT_FAILURE, ProgressBar, handle_errors, print_json, stderr, stdout
from conveyor.cli.trust import SignOption, TlsVerifyOption
from conveyor.extras import require
from conveyor.packaging import DEFAULT_BASE
from conveyor.registry.config import open_registry

if TYPE_CHECKING:
    from conveyor.packaging.context import BuildContext

BaseImage = Annotated[
    str,
    typer.Option(
        "--base-image",
        help="Image to build FROM (needs python3 with venv; `conveyor base-image` makes one from Debian packages).",
    ),
]
Platform = Annotated[str, typer.Option(help="Target platform: linux/amd64 or linux/arm64.")]


def _context(ref: str, out: Path, base_image: str, platform: str, title: str | None) -> BuildContext:
    from conveyor.packaging.context import default_wheelhouse, write_context

    registry = open_registry()
    with ProgressBar() as bar:
        version, folder = registry.cached(ref, bar)
        return write_context(version, folder, out, base_image, platform, title, default_wheelhouse(), bar)


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
    tls_verify: TlsVerifyOption = None,
    context_dir: Annotated[Path | None, typer.Option("--context", help="Keep the build context here.")] = None,
    sign: SignOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Build REF into an image with a real builder, stream its output, optionally push it.

    Every build writes a CycloneDX SBOM (inside the image and beside it) and an SLSA provenance,
    signed with --sign KEY; with --push the signature and attestations are pushed beside the image.
    Push credentials: CONVEYOR_REGISTRY_USERNAME / CONVEYOR_REGISTRY_PASSWORD (CI secrets), or a
    prior `podman login` / `docker login`."""
    with handle_errors():  # the SBOM, the provenance and the image's wheels: named before anything starts
        require("cyclonedx", extra="build", for_="conveyor build")
    from datetime import UTC, datetime

    from rich.status import Status

    from conveyor.packaging.builders import build as run_build
    from conveyor.packaging.builders import detect_builder, push
    from conveyor.supply_chain.keys import optional_signing_key
    from conveyor.supply_chain.record import record_build, sign_pushed

    with handle_errors():
        key = optional_signing_key(sign)
        engine = detect_builder(builder)
        with tempfile.TemporaryDirectory(prefix="conveyor-build-") as tmp:
            out = context_dir or Path(tmp) / "context"
            started = datetime.now(UTC)
            context = _context(ref, out, base_image, platform, tag)
            version = context.version
            with Status(f"{engine} build {tag}", console=stderr.rich()) as status:
                image = run_build(
                    out,
                    tag,
                    engine,
                    platform if platform != "linux/amd64" else None,
                    on_line=lambda line: status.update(f"{engine} build {tag}: {line[:100]}"),
                )
            record = record_build(context, image, started, datetime.now(UTC), key)
        pushed = push(tag, engine, push_to, tls_verify) if do_push else None
        attachment = None
        if pushed:  # the registry remembers which image carries the version (the dashboard shows it)
            attachment, _ = sign_pushed(image.reference, pushed, engine, key, tls_verify)
            open_registry().set_tags(version.name, version.version, {"image": pushed}, [])
    result = {
        "image": image.reference,
        "id": image.image_id,
        "size_bytes": image.size,
        "build_seconds": round(image.seconds, 1),
        "builder": image.builder,
        "pushed": pushed,
        "attestations": str(record.folder),
        "attestations_pushed": attachment or None,
        "signed_by": record.signed_by,
    }
    if as_json:
        print_json(result)
        return
    stdout.print(
        f"built [bold]{image.reference}[/bold] id {image.image_id[:12]} "
        f"{image.size / 2**20:.0f} MiB in {image.seconds:.1f}s with {image.builder}"
    )
    signed = f"signed by key {record.signed_by[:12]}" if record.signed_by else "unsigned: pass --sign KEY"
    stdout.print(f"SBOM and provenance ({signed}) in {record.folder}", highlight=False)
    if pushed:
        stdout.print(f"pushed {pushed}" + (f" (attestations: {attachment})" if attachment else ""))


def push_image(
    image: Annotated[str, typer.Argument(help="A local image built by conveyor build.")],
    to: Annotated[str | None, typer.Option("--to", help="Push under this name instead of IMAGE.")] = None,
    sign: SignOption = None,
    builder: Annotated[str | None, typer.Option(help="podman, docker or buildah [default: the first found].")] = None,
    tls_verify: TlsVerifyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Push IMAGE, sign it with --sign KEY, and push its SBOM, provenance and signature beside it.

    The attestations go to REPOSITORY:sha256-<image id>.att, where `conveyor verify --supply-chain
    --pull` finds them. Credentials as for `conveyor build --push`."""
    from conveyor.packaging.builders import detect_builder, push
    from conveyor.supply_chain.keys import optional_signing_key
    from conveyor.supply_chain.record import sign_pushed

    with handle_errors():
        key = optional_signing_key(sign)
        engine = detect_builder(builder)
        pushed = push(image, engine, to, tls_verify)
        attachment, signer = sign_pushed(image, pushed, engine, key, tls_verify)
    if as_json:
        print_json({"pushed": pushed, "attestations_pushed": attachment or None, "signed_by": signer})
        return
    stdout.print(f"pushed {pushed}" + (f" signed by key {signer[:12]}" if signer else " (unsigned)"), highlight=False)
    if attachment:
        stdout.print(f"attestations: {attachment}", highlight=False)


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


def base_image(
    image: Annotated[str, typer.Argument(help="Name of the image to make.")] = "localhost/conveyor-base:bookworm",
    mirror: Annotated[
        str, typer.Option(help="Debian mirror debootstrap downloads from.")
    ] = "http://deb.debian.org/debian",
) -> None:
    """Make a base image from Debian's own packages (bookworm, Python 3.11 + venv), for machines without
    Docker Hub: then `conveyor build REF -t TAG --base-image IMAGE`. Needs root, debootstrap and podman or docker."""
    from conveyor.packaging.base_image import make_base_image

    with handle_errors(), stderr.status(f"debootstrap bookworm into {image} (about a minute)"):
        python = make_base_image(image, mirror)
    stdout.print(f"{image}: {python}; build with --base-image {image}")
