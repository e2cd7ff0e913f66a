"""The ``fetch-model`` step type.

Download ``with.ref`` (verified) into the run's artifacts (``with.dest``, default model/).
"""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_args import StepArgs
from conveyor.pipeline.step_types import step_type


class FetchModelArgs(StepArgs):
    ref: str
    dest: str = "model"  # under the run's artifacts


@step_type("fetch-model", args=FetchModelArgs)
def fetch_model(ctx: StepContext[FetchModelArgs]) -> dict[str, Any]:
    """Download ``with.ref`` (verified) into the run's artifacts (``with.dest``, default model/)."""
    from conveyor.registry.config import open_registry

    dest = ctx.artifacts / ctx.options.dest
    version = open_registry().download(ctx.options.ref, dest)
    print(f"fetched {version.ref} sha256:{version.digest} into {dest}")
    return {
        "ref": version.ref,
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "path": str(dest),
    }
