"""The ``verify`` step type.

``conveyor verify`` of ``with.target`` (URL, model path, reference or image with ``with.image: true``);
``with.supply_chain: true`` checks the image's supply chain instead, against ``with.trusted_keys``
(public key files, relative to the project; else $CONVEYOR_TRUSTED_KEYS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_args import Flag, StepArgs, Switch
from conveyor.pipeline.step_types import step_type

if TYPE_CHECKING:
    from conveyor.pipeline.spec import Step


class VerifyArgs(StepArgs):
    target: str  # URL, model path, registry reference, or image with `image: true`
    contract: str | None = None  # relative to the project
    image: Switch = False
    skip: list[str] = Field(default_factory=list)  # check ids or patterns (latency.*)
    supply_chain: Switch = False  # check the image's signatures, provenance and SBOM instead
    trusted_keys: list[str] = Field(
        default_factory=list
    )  # public key files, relative to the project; else $CONVEYOR_TRUSTED_KEYS
    pull: Switch = False
    tls_verify: Flag = None


def _extras(step: Step) -> tuple[str, ...]:
    return ("supply-chain",) if step.with_.get("supply_chain") else ()


@step_type("verify", args=VerifyArgs, extras=_extras)
def verify(ctx: StepContext[VerifyArgs]) -> dict[str, Any]:
    """``conveyor verify`` of ``with.target`` (URL, model path, reference or image with ``with.image: true``)."""
    import sys

    from rich.console import Console

    from conveyor.verify.contract import load_contract
    from conveyor.verify.reports import ok, print_table, write_junit
    from conveyor.verify.runner import load_custom_checks, verify_target

    args = ctx.options
    target = args.target
    contract_file = args.contract
    contract = load_contract(ctx.project / contract_file if contract_file else None)
    junit = ctx.artifacts / f"verify-{ctx.step}.xml"
    if args.supply_chain:
        from pathlib import Path

        from conveyor.supply_chain.chain import check_results

        keys = [ctx.project / Path(k) for k in args.trusted_keys]
        results = check_results(target, keys, args.pull, args.tls_verify)
    else:
        results = verify_target(
            target,
            contract,
            image=args.image,
            custom=load_custom_checks(None, []),
            skip=list(args.skip),
        )
    print_table(results, target, Console(file=sys.stdout, width=140))
    write_junit(results, target, junit)
    if not ok(results):
        bad = [r.id for r in results if r.status in ("failed", "error")]
        raise StepFailed(f"verification of {target} failed: {', '.join(bad)}")
    return {"junit": str(junit), "checks": len(results)}
