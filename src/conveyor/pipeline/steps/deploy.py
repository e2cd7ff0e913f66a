"""The ``deploy`` step type.

Point ``with.name@with.alias`` at ``with.version`` (default: the version of ``with.ref``).
"""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_args import StepArgs, Switch
from conveyor.pipeline.step_types import step_type


class DeployArgs(StepArgs):
    name: str
    alias: str = "staging"
    version: int | None = None  # default: the version of `ref`
    ref: str | None = None
    force: Switch = False  # move an alias that protects a version (e.g. production)


@step_type("deploy", args=DeployArgs)
def deploy(ctx: StepContext[DeployArgs]) -> dict[str, Any]:
    """Point ``with.name@with.alias`` at ``with.version`` (default: the version of ``with.ref``)."""
    from conveyor.registry.config import open_registry

    registry = open_registry()
    args = ctx.options
    name, alias = args.name, args.alias
    if args.version:
        version = args.version
    elif args.ref is not None:
        version = registry.resolve(args.ref).version
    else:
        raise StepFailed("a deploy step needs `with: {version: N}` or `with: {ref: name:N}`")
    result = registry.set_alias(name, alias, version, force=args.force)
    print(f"{name}@{alias} -> {name}:{result.version}")
    return {"alias": f"{name}@{alias}", "version": result.version}
