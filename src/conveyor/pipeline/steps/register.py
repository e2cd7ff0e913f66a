"""The ``register`` step type.

Register ``with.path`` as ``with.name`` (aliases, metrics, properties; lineage run id = this run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_types import step_type


@step_type("register")
def register(ctx: StepContext) -> dict[str, Any]:
    """Register ``with.path`` as ``with.name`` (aliases, metrics, properties; lineage run id = this run)."""
    from conveyor.pipeline.decisions import run_approvals
    from conveyor.registry.base import git_commit
    from conveyor.registry.config import open_registry
    from conveyor.registry.records import Lineage

    metrics = {k: float(v) for k, v in (ctx.arg("metrics", {}) or {}).items()}
    version = open_registry().register(
        Path(ctx.arg("path", required=True)),
        ctx.arg("name", required=True),
        description=ctx.arg("description", ""),
        aliases=list(ctx.arg("aliases", []) or []),
        properties={k: str(v) for k, v in (ctx.arg("properties", {}) or {}).items()},
        lineage=Lineage(
            run_id=ctx.run_id,
            metrics=metrics,
            git_commit=git_commit(ctx.project),
            approvals=[d.as_dict() for d in run_approvals(ctx.run_id) if d.approved],
        ),
        skip_unchanged=bool(ctx.arg("skip_unchanged", False)),
    )
    print(f"registered {version.ref} sha256:{version.digest}")
    return {"ref": version.ref, "version": version.version, "digest": version.digest}
