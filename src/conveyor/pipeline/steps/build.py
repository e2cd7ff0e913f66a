"""The ``build`` step type: build ``with.ref`` into image ``with.tag`` (``with.base_image``, ``with.builder``)."""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_types import step_type


@step_type("build", container_login=True)
def build(ctx: StepContext) -> dict[str, Any]:
    """Build ``with.ref`` into image ``with.tag`` (``with.base_image``, ``with.builder``)."""
    from conveyor.packaging import DEFAULT_BASE
    from conveyor.packaging.builders import build as run_build
    from conveyor.packaging.builders import detect_builder
    from conveyor.packaging.context import default_wheelhouse, write_context
    from conveyor.registry.config import open_registry

    ref, tag = ctx.arg("ref", required=True), ctx.arg("tag", required=True)
    engine = detect_builder(ctx.arg("builder"))
    version, folder = open_registry().cached(ref)
    context = ctx.artifacts / f"context-{ctx.step}"
    if context.exists():
        import shutil

        shutil.rmtree(context)
    write_context(
        version,
        folder,
        context,
        ctx.arg("base_image", DEFAULT_BASE),
        wheel_cache=default_wheelhouse(),
        title=tag,
    )
    image = run_build(context, tag, engine, on_line=print)
    print(f"built {image.reference} {image.image_id[:12]} {image.size / 2**20:.0f} MiB in {image.seconds:.1f}s")
    return {
        "image": image.reference,
        "id": image.image_id,
        "size": image.size,
        "model_ref": version.ref,
        "digest": version.digest,
    }
