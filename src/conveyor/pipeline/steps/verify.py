"""The ``verify`` step type.

``conveyor verify`` of ``with.target`` (URL, model path, reference or image with ``with.image: true``);
``with.supply_chain: true`` checks the image's supply chain instead, against ``with.trusted_keys``
(public key files, relative to the project; else $CONVEYOR_TRUSTED_KEYS).
"""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_types import step_type


@step_type("verify")
def verify(ctx: StepContext) -> dict[str, Any]:
    """``conveyor verify`` of ``with.target`` (URL, model path, reference or image with ``with.image: true``)."""
    import sys

    from rich.console import Console

    from conveyor.verify.contract import load_contract
    from conveyor.verify.reports import ok, print_table, write_junit
    from conveyor.verify.runner import load_custom_checks, verify_target

    target = str(ctx.arg("target", required=True))
    contract_file = ctx.arg("contract")
    contract = load_contract(ctx.project / contract_file if contract_file else None)
    junit = ctx.artifacts / f"verify-{ctx.step}.xml"
    if ctx.arg("supply_chain", False):
        from pathlib import Path

        from conveyor.supply_chain.chain import check_results

        keys = [ctx.project / Path(str(k)) for k in ctx.arg("trusted_keys", []) or []]
        results = check_results(target, keys, bool(ctx.arg("pull", False)), ctx.flag("tls_verify"))
    else:
        results = verify_target(
            target,
            contract,
            image=bool(ctx.arg("image", False)),
            custom=load_custom_checks(None, []),
            skip=list(ctx.arg("skip", [])),
        )
    print_table(results, target, Console(file=sys.stdout, width=140))
    write_junit(results, target, junit)
    if not ok(results):
        bad = [r.id for r in results if r.status in ("failed", "error")]
        raise StepFailed(f"verification of {target} failed: {', '.join(bad)}")
    return {"junit": str(junit), "checks": len(results)}
