"""The ``build`` step type: build ``with.ref`` into image ``with.tag`` (``with.base_image``, ``with.builder``).

Like ``conveyor build``: an SBOM and a provenance for every build, signed with ``with.sign`` (a key
file) or $CONVEYOR_SIGNING_KEY when set.
"""

from __future__ import annotations

from typing import Any

from conveyor.packaging import DEFAULT_BASE
from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_args import SignWith, StepArgs
from conveyor.pipeline.step_types import step_type


class BuildArgs(StepArgs):
    ref: str
    tag: str
    base_image: str = DEFAULT_BASE
    builder: str | None = None  # podman, docker or buildah; default: the first found
    sign: SignWith = None


@step_type("build", container_login=True, signs=True, args=BuildArgs, extras=("build",))
def build(ctx: StepContext[BuildArgs]) -> dict[str, Any]:
    """Build ``with.ref`` into image ``with.tag`` (``with.base_image``, ``with.builder``)."""
    from datetime import UTC, datetime

    from conveyor.packaging.builders import build as run_build
    from conveyor.packaging.builders import detect_builder
    from conveyor.packaging.context import default_wheelhouse, write_context
    from conveyor.registry.config import open_registry
    from conveyor.supply_chain.keys import step_signing_key
    from conveyor.supply_chain.record import record_build

    args = ctx.options
    ref, tag = args.ref, args.tag
    key = step_signing_key(args.sign, ctx.project, by_default=True)
    started = datetime.now(UTC)
    engine = detect_builder(args.builder)
    version, folder = open_registry().cached(ref)
    context = ctx.artifacts / f"context-{ctx.step}"
    if context.exists():
        import shutil

        shutil.rmtree(context)
    built = write_context(
        version,
        folder,
        context,
        args.base_image,
        wheel_cache=default_wheelhouse(),
        title=tag,
    )
    image = run_build(context, tag, engine, on_line=print)
    print(f"built {image.reference} {image.image_id[:12]} {image.size / 2**20:.0f} MiB in {image.seconds:.1f}s")
    record = record_build(built, image, started, datetime.now(UTC), key)
    print(f"SBOM and provenance ({f'signed by key {key.key_id[:12]}' if key else 'unsigned'}) in {record.folder}")
    return {
        "attestations": str(record.folder),
        "signed_by": record.signed_by,
        "image": image.reference,
        "id": image.image_id,
        "size": image.size,
        "model_ref": version.ref,
        "digest": version.digest,
    }
