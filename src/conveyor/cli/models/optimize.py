"""``conveyor models optimize``: smaller, faster variants of a version, registered only if they agree with it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from conveyor.optimize.run import Outcome


from conveyor.cli.models.common import JsonOption, RegistryOption, TokenOption
from conveyor.cli.output import handle_errors, new_table, print_json, stdout
from conveyor.optimize import DEFAULT_MIN_AGREEMENT
from conveyor.registry.config import open_registry


def _optimize_table(outcome: Outcome) -> Table:
    data = outcome.as_dict()
    table = new_table(f"variants of {data['source']} (original: {data['original_texts_per_s'] or '-'} inputs/s)")
    for column in ("method", "label agreement", "max prob diff", "inputs/s", "speed-up (rounds)", "gate"):
        table.add_column(column)
    for c in data["candidates"]:
        table.add_row(
            c["method"],
            f"{c['agreement']:.2%} of {c['compared']}",
            f"{c['max_probability_diff']:.4f}",
            "-" if c["texts_per_s"] is None else f"{c['texts_per_s']:.0f}",
            "-" if c["speedup"] is None else "{:.2f}x ({:.2f}-{:.2f})".format(c["speedup"], *c["speedup_interval"]),
            "[green]passed[/green]" if c["passed"] else "[red]refused[/red]",
        )
    return table


def optimize(
    ref: Annotated[str, typer.Argument(help="The version to make faster: name:version or name@alias.")],
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            "-m",
            help="fused-int8-smooth, int8-smooth, int8, fused or graph (repeatable) "
            "[default: all but graph; none with --variant].",
        ),
    ] = None,
    eval_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help='Inputs to compare on: a JSON list (texts or records), {"texts": [...]}, a CSV of rows, '
            "images or a folder of them, or one text per line (repeatable).",
        ),
    ] = None,
    calibrate: Annotated[
        list[Path] | None,
        typer.Option(
            help="Texts the int8-smooth methods calibrate on, e.g. the training split "
            "(repeatable, same formats as --eval) [default: the evaluation texts]."
        ),
    ] = None,
    contract: Annotated[
        Path | None, typer.Option(help="Its golden examples are compared too [default: contract.yaml if present].")
    ] = None,
    variant: Annotated[
        Path | None, typer.Option(help="Gate and register an ONNX file made elsewhere (Optimum, Olive...) as well.")
    ] = None,
    min_agreement: Annotated[
        float, typer.Option(help="Share of inputs a variant must answer as the original.", min=0.0, max=1.0)
    ] = DEFAULT_MIN_AGREEMENT,
    no_measure: Annotated[
        bool, typer.Option("--no-measure", help="Take the first variant that passes, without measuring speed.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Gate and measure, register nothing.")] = False,
    alias: Annotated[list[str] | None, typer.Option(help="Point this alias at the new version (repeatable).")] = None,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="Make a new variant even if the version already has one by these methods "
            "[default: that one is returned, nothing made].",
        ),
    ] = False,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a faster variant of a version (int8, SmoothQuant int8, fused), gate it on agreement, register it.

    Exit codes: 0 registered (or --dry-run passed, or the version already has such a variant),
    1 refused (no variant agrees, or none is faster).
    """
    from conveyor.cli.output import EXIT_FAILURE
    from conveyor.optimize.run import DEFAULT_METHODS, GateRefused, evaluation_inputs, evaluation_texts
    from conveyor.optimize.run import optimize as run_optimize
    from conveyor.verify.contract import load_contract

    with handle_errors():
        contract_path = contract or (Path("contract.yaml") if Path("contract.yaml").is_file() else None)
        golden = [case.input for case in load_contract(contract_path).golden] if contract_path else []
        texts = evaluation_inputs(open_registry(registry, token), ref, golden, eval_file or [])
        notice = (lambda text: None) if as_json else (lambda text: stdout.print(f"[dim]{text}[/dim]", highlight=False))
        try:
            outcome = run_optimize(
                open_registry(registry, token),
                ref,
                texts,
                methods=method or ([] if variant else list(DEFAULT_METHODS)),
                variant=variant,
                calibration_texts=evaluation_texts([], calibrate) if calibrate else None,
                min_agreement=min_agreement,
                measure=not no_measure,
                register=not dry_run,
                aliases=alias or [],
                again=again,
                on_step=notice,
            )
        except GateRefused as refused:
            if as_json:
                print_json(refused.outcome.as_dict())
            else:
                if refused.outcome.candidates:  # no method made a variant: the one line says why for each
                    stdout.print(_optimize_table(refused.outcome))
                for c in refused.outcome.candidates:
                    for d in c.agreement.disagreements[:5]:
                        stdout.print(
                            f"  {c.method}: {d['input']!r}: {d['original']} -> {d['variant']}", highlight=False
                        )
                stdout.print(f"[red]refused:[/red] {refused}", highlight=False)
            raise typer.Exit(EXIT_FAILURE) from None
    if as_json:
        print_json(outcome.as_dict())
        return
    if outcome.existing:
        stdout.print(f"{outcome.reason} (--again makes a new one)", highlight=False)
        return
    stdout.print(_optimize_table(outcome))
    speedup = f", {outcome.speedup:.2f}x in-process" if outcome.speedup else ""
    what = f"registered {outcome.registered.ref}" if outcome.registered else "dry run: nothing registered"
    stdout.print(f"{outcome.method}: {outcome.reason}{speedup}; {what}", highlight=False)
