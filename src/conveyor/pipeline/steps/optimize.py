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

from pydantic import Field

from conveyor.optimize import DEFAULT_METHODS, DEFAULT_MIN_AGREEMENT
from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_args import StepArgs, Switch
from conveyor.pipeline.step_types import step_type


class OptimizeArgs(StepArgs):
    ref: str
    eval: str | list[str] = Field(default_factory=list)  # evaluation inputs: files, relative to the project
    contract: str | list[str] = Field(default_factory=list)  # contracts whose golden inputs are compared too
    calibrate: str | list[str] = Field(default_factory=list)  # texts the int8-smooth methods calibrate on
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS))
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    measure: Switch = True
    aliases: list[str] = Field(default_factory=list)
    again: Switch = False


def _paths(ctx: StepContext[OptimizeArgs], value: str | list[str]) -> list[Path]:
    items = value if isinstance(value, list) else [value] if value else []
    return [Path(item) if Path(item).is_absolute() else ctx.project / item for item in items]


@step_type("optimize", args=OptimizeArgs, extras=("optimize",))
def optimize(ctx: StepContext[OptimizeArgs]) -> dict[str, Any]:
    """A faster variant of ``with.ref`` (see ``DEFAULT_METHODS``), gated on label agreement and registered."""
    from conveyor.optimize.run import GateRefused, evaluation_inputs, evaluation_texts
    from conveyor.optimize.run import optimize as run_optimize
    from conveyor.registry.config import open_registry
    from conveyor.verify.contract import load_contract

    args = ctx.options
    contracts = _paths(ctx, args.contract)
    golden = [case.input for path in contracts for case in load_contract(path).golden]
    registry, ref = open_registry(), args.ref
    texts = evaluation_inputs(registry, ref, golden, _paths(ctx, args.eval))
    calibrate = _paths(ctx, args.calibrate)
    try:
        outcome = run_optimize(
            registry,
            ref,
            texts,
            methods=list(args.methods),
            calibration_texts=evaluation_texts([], calibrate) if calibrate else None,
            min_agreement=args.min_agreement,
            measure=args.measure,
            aliases=list(args.aliases),
            again=args.again,
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
