"""The ``deploy`` step type.

Point ``with.name@with.alias`` at ``with.version`` (default: the version of ``with.ref``).
"""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_types import step_type


@step_type("deploy")
def deploy(ctx: StepContext) -> dict[str, Any]:
    """Point ``with.name@with.alias`` at ``with.version`` (default: the version of ``with.ref``)."""
    from conveyor.registry.config import open_registry

    registry = open_registry()
    name, alias = ctx.arg("name", required=True), ctx.arg("alias", "staging")
    version = ctx.arg("version") or registry.resolve(ctx.arg("ref", required=True)).version
    result = registry.set_alias(name, alias, int(version), force=bool(ctx.arg("force", False)))
    print(f"{name}@{alias} -> {name}:{result.version}")
    return {"alias": f"{name}@{alias}", "version": result.version}
