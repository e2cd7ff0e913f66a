"""The ``fetch-model`` step type.

Download ``with.ref`` (verified) into the run's artifacts (``with.dest``, default model/).
"""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_types import step_type


@step_type("fetch-model")
def fetch_model(ctx: StepContext) -> dict[str, Any]:
    """Download ``with.ref`` (verified) into the run's artifacts (``with.dest``, default model/)."""
    from conveyor.registry.config import open_registry

    dest = ctx.artifacts / ctx.arg("dest", "model")
    version = open_registry().download(ctx.arg("ref", required=True), dest)
    print(f"fetched {version.ref} sha256:{version.digest} into {dest}")
    return {
        "ref": version.ref,
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "path": str(dest),
    }
