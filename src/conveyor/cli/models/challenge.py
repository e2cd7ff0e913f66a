"""``conveyor models challenge``: a retrained version against the live one on labelled production traffic,
or a generative version against the live one on a generation contract's golden prompts (``--contract``).

Exit 0 when the candidate is at least ``--margin`` better, 1 when it is refused (worse, or too
few labelled rows to tell), 2 for a bad option or an unreadable file, 4 when a version is not there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.models.common import JsonOption
from conveyor.cli.monitor import resolve_served
from conveyor.cli.output import EXIT_FAILURE, fail, handle_errors, new_table, print_json, stderr, stdout
from conveyor.monitoring.challenge import DEFAULT_MARGIN, DEFAULT_MIN_ITEMS


def challenge(
    candidate: Annotated[str, typer.Argument(help="The retrained version: name:N (or a model folder).")],
    labelled: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Labelled rows (CSV: the inputs and the true answer), e.g. `conveyor monitor --export-holdout`.",
        ),
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="A generative version: the contract whose `generation:` golden prompts judge it, the champion "
            "as the incumbent (instead of --labelled).",
        ),
    ] = None,
    champion: Annotated[
        str | None, typer.Option(help="The live version to beat [default: the candidate's name@production].")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The column of true answers [default: label, or value for a regressor].")
    ] = None,
    margin: Annotated[
        float,
        typer.Option(
            help="How much better the candidate must be (accuracy as a share, e.g. 0.01, or MAE); "
            "negative tolerates worse."
        ),
    ] = DEFAULT_MARGIN,
    min_items: Annotated[int, typer.Option(min=1, help="Fewer labelled rows is a refusal.")] = DEFAULT_MIN_ITEMS,
    recent: Annotated[int | None, typer.Option(min=1, help="Judge on only the last N rows of FILE.")] = None,
    record: Annotated[
        bool, typer.Option(help="Tag a registered candidate with the verdict (challenge=passed|refused, scores).")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Score CANDIDATE and the live version on the same labelled traffic; pass only a better one.

    A generative version is judged on a contract's golden prompts instead (--contract)."""
    from conveyor.monitoring.challenge import challenge as judge
    from conveyor.monitoring.challenge import champion_of, record_verdict

    if (labelled is None) == (contract is None):
        raise fail("give --labelled FILE (labelled rows), or --contract FILE for a generative version")
    if contract is not None:
        _challenge_generation(candidate, champion, contract, record, as_json)
        return
    assert labelled is not None
    with handle_errors():
        against = champion_of(candidate, champion)
        verdict = judge(
            resolve_served(candidate),
            resolve_served(against),
            labelled,
            target=target,
            margin=margin,
            min_items=min_items,
            recent=recent,
        )
        if record:
            record_verdict(candidate, verdict)
    if as_json:
        print_json(verdict.as_dict())
    else:
        _render(verdict, against)
    if not verdict.passed:
        raise typer.Exit(EXIT_FAILURE)


def _challenge_generation(candidate: str, champion: str | None, contract: Path, record: bool, as_json: bool) -> None:
    from conveyor.monitoring.challenge import champion_of
    from conveyor.verify.challenge import challenge_generation, record_generation_verdict
    from conveyor.verify.reports import as_json as report
    from conveyor.verify.reports import print_table

    with handle_errors():
        against = champion_of(candidate, champion)
        verdict = challenge_generation(
            candidate, against, contract, on_notice=lambda text: stderr.print(f"note: {text}", highlight=False)
        )
        if record:
            record_generation_verdict(candidate, verdict)
    if as_json:
        print_json({**report(verdict.results, candidate), "champion": against, "passed": verdict.passed})
    else:
        print_table(verdict.results, f"{candidate} against {against}", stdout)
        outcome = "[green]passed[/green]" if verdict.passed else "[red]refused[/red]"
        stdout.print(f"{outcome}: {verdict.tags()['challenge.checks']} judged checks passed, "
                     f"{verdict.too_noisy} too noisy to judge")  # fmt: skip
    if not verdict.passed:
        raise typer.Exit(EXIT_FAILURE)


def _render(verdict: Any, against: str) -> None:
    table = new_table(f"{verdict.candidate.ref} against {against} ({verdict.champion.ref}) on {verdict.items} rows")
    for column in ("version", "role", verdict.candidate.metric):
        table.add_column(column)
    show = "{:.1%}" if verdict.candidate.metric == "accuracy" else "{:.4g}"
    table.add_row(verdict.candidate.ref, "candidate", show.format(verdict.candidate.value))
    table.add_row(verdict.champion.ref, "champion", show.format(verdict.champion.value))
    stdout.print(table)
    outcome = "[green]passed[/green]" if verdict.passed else "[red]refused[/red]"
    stdout.print(f"{outcome}: {verdict.reason}")
