"""The ``register`` step type.

Register ``with.path`` as ``with.name`` (aliases, metrics, properties; lineage run id = this run);
``with.sign`` (true: $CONVEYOR_SIGNING_KEY, or a key file) signs the new version's files.
Files that cannot be served are refused (``serving.intake``) unless ``with.check`` is false.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_args import SignWith, StepArgs, Switch
from conveyor.pipeline.step_types import step_type

if TYPE_CHECKING:
    from conveyor.pipeline.spec import Step


class RegisterArgs(StepArgs):
    path: str
    name: str
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    properties: dict[str, str | int | float | bool] = Field(default_factory=dict)
    skip_unchanged: Switch = False  # the same files as the latest version: register nothing
    check: Switch = True  # refuse files the server could not load
    sign: SignWith = None


def _extras(step: Step) -> tuple[str, ...]:
    return ("supply-chain",) if step.with_.get("sign") not in (None, False) else ()


@step_type("register", signs=True, args=RegisterArgs, extras=_extras)
def register(ctx: StepContext[RegisterArgs]) -> dict[str, Any]:
    """Register ``with.path`` as ``with.name`` (aliases, metrics, properties; lineage run id = this run)."""
    from conveyor.pipeline.decisions import run_approvals
    from conveyor.registry.base import git_commit
    from conveyor.registry.config import open_registry
    from conveyor.registry.records import Lineage
    from conveyor.serving.intake import check_servable
    from conveyor.supply_chain.keys import step_signing_key
    from conveyor.supply_chain.model_signature import sign_version

    args = ctx.options
    version = open_registry().register(
        Path(args.path),
        args.name,
        description=args.description,
        aliases=list(args.aliases),
        properties={k: str(v) for k, v in args.properties.items()},
        lineage=Lineage(
            run_id=ctx.run_id,
            metrics=dict(args.metrics),
            git_commit=git_commit(ctx.project),
            approvals=[d.as_dict() for d in run_approvals(ctx.run_id) if d.approved],
        ),
        skip_unchanged=args.skip_unchanged,
        check=check_servable if args.check else None,
    )
    print(f"registered {version.ref} sha256:{version.digest}")
    outputs: dict[str, Any] = {"ref": version.ref, "version": version.version, "digest": version.digest}
    key = step_signing_key(args.sign, ctx.project, by_default=False)
    if key is not None:
        signed = sign_version(open_registry(), version.ref, key)
        print(f"signed {signed.ref} with key {signed.key_id[:12]}")
        outputs["signed_by"] = signed.key_id
    return outputs
