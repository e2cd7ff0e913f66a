"""The ``optimize`` step type: a faster variant of ``with.ref``, gated on agreement, registered.

``with.eval`` names files of evaluation texts (the training pipeline's held-out ``test.json``),
``with.contract`` a contract whose golden examples are compared too, ``with.calibrate`` files of
texts the int8-smooth methods calibrate on (the training split's ``train.json``); ``with.methods``,
``with.min_agreement`` (default 0.99), ``with.measure`` (default true), ``with.aliases`` and
``with.again`` (default false) as for ``conveyor models optimize``.
The step fails when no variant agrees (or none is faster), listing the disagreeing texts; a version
that already has a variant by these methods gets that one back, so a run on unchanged code adds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_types import step_type


def _paths(ctx: StepContext, value: Any) -> list[Path]:
    items = value if isinstance(value, list) else [value] if value else []
    return [Path(item) if Path(item).is_absolute() else ctx.project / item for item in items]


@step_type("optimize")
def optimize(ctx: StepContext) -> dict[str, Any]:
    """A faster variant of ``with.ref`` (see ``DEFAULT_METHODS``), gated on label agreement and registered."""
    from conveyor.optimize.run import DEFAULT_METHODS, GateRefused, evaluation_inputs, evaluation_texts
    from conveyor.optimize.run import optimize as run_optimize
    from conveyor.registry.config import open_registry
    from conveyor.verify.contract import load_contract

    contracts = _paths(ctx, ctx.arg("contract"))
    golden = [case.input for path in contracts for case in load_contract(path).golden]
    registry, ref = open_registry(), str(ctx.arg("ref", required=True))
    texts = evaluation_inputs(registry, ref, golden, _paths(ctx, ctx.arg("eval")))
    calibrate = _paths(ctx, ctx.arg("calibrate"))
    try:
        outcome = run_optimize(
            registry,
            ref,
            texts,
            methods=list(ctx.arg("methods", list(DEFAULT_METHODS))),
            calibration_texts=evaluation_texts([], calibrate) if calibrate else None,
            min_agreement=float(ctx.arg("min_agreement", 0.99)),
            measure=bool(ctx.arg("measure", True)),
            aliases=list(ctx.arg("aliases", []) or []),
            again=bool(ctx.arg("again", False)),
            on_step=print,
        )
    except GateRefused as refused:
        for candidate in refused.outcome.candidates:
            for d in candidate.agreement.disagreements[:5]:
                print(f"{candidate.method}: {d['input']!r}: {d['original']} -> {d['variant']}")
        raise StepFailed(str(refused)) from None
    assert outcome.registered is not None
    speed = f", {outcome.speedup:.2f}x in-process" if outcome.speedup else ""
    print(outcome.reason if outcome.existing else f"registered {outcome.registered.ref}: {outcome.reason}{speed}")
    return {
        "ref": outcome.registered.ref,
        "version": outcome.registered.version,
        "method": outcome.method,
        "agreement": None if outcome.agreement is None else round(outcome.agreement, 6),
        "speedup": None if outcome.speedup is None else round(outcome.speedup, 4),
        "existing": outcome.existing,
    }
