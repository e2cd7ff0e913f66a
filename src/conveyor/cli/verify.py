"""``conveyor verify``: check every layer a prediction request crosses, in parallel, with CI reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.output import EXIT_FAILURE, fail, handle_errors, print_json, stderr, stdout
from conveyor.cli.trust import TlsVerifyOption, TrustedKeyOption

if TYPE_CHECKING:
    from conveyor.verify.checks import CheckResult


def verify(
    target: Annotated[
        str | None,
        typer.Argument(
            help="A server URL, a model folder / .onnx / registry reference (served for the run), "
            "or an image. Leave out to run only the static checks of --project."
        ),
    ] = None,
    contract_file: Annotated[Path | None, typer.Option("--contract", "-c", help="The model's contract.yaml.")] = None,
    project: Annotated[
        Path | None, typer.Option(help="Delivery project folder for static checks [default: . if it has conveyor.yaml]")
    ] = None,
    checks: Annotated[list[str] | None, typer.Option("--checks", help="Import custom checks from this module.")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Skip checks by id or pattern (lint.*).")] = None,
    model_ref: Annotated[str | None, typer.Option(help="Registry reference the local model must match.")] = None,
    model_path: Annotated[
        Path | None, typer.Option(help="Local model folder or file to compare with --model-ref.")
    ] = None,
    image: Annotated[bool, typer.Option("--image", help="TARGET is a container image.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    json_report: Annotated[Path | None, typer.Option("--json-report", help="Write a JSON report here.")] = None,
    as_json_out: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of the table.")] = False,
    write_contract: Annotated[
        Path | None, typer.Option(help="Record a starter contract from TARGET into this file, for review.")
    ] = None,
    example: Annotated[list[str] | None, typer.Option(help="Texts to record golden examples from.")] = None,
    sample: Annotated[
        Path | None,
        typer.Option(help="--write-contract: inputs to record golden examples from (.txt, .csv, .json, images)."),
    ] = None,
    supply_chain: Annotated[
        bool,
        typer.Option(
            "--supply-chain",
            help="TARGET is an image: check its signature, provenance, SBOM and model signature instead of serving it.",
        ),
    ] = False,
    trusted_key: TrustedKeyOption = None,
    pull: Annotated[
        bool, typer.Option("--pull", help="--supply-chain: pull the image and its attestations if not here.")
    ] = False,
    tls_verify: TlsVerifyOption = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="TARGET is a registered version: tag it with the outcome (verify=passed|failed), written back to "
            "MLflow for a version imported from there.",
        ),
    ] = False,
    incumbent: Annotated[
        str | None,
        typer.Option(
            help="A generation contract's incumbent (URL, model or registry reference, served for the run): "
            "its answers are what `incumbent: true` expectations compare with."
        ),
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, help="Checks run at once.")] = 8,
    startup_timeout: Annotated[float, typer.Option(help="Seconds to wait for a served model or image.")] = 120,
) -> None:
    """Verify a model server layer by layer, and a project's dependencies, lint and model digest.

    Checks HTTP, route, JSON parsing, prediction, typed response, bad input, golden examples,
    latency and the v2 protocol, in parallel; a generative version's golden prompts with their
    measured spread (a contract's `generation:`). Exit code 0 only when every check passed."""
    from conveyor.verify.checks import Context
    from conveyor.verify.contract import dump_contract, load_contract
    from conveyor.verify.record import record_contract
    from conveyor.verify.runner import load_custom_checks, verify_target, with_v2_model
    from conveyor.verify.targets import open_target

    if supply_chain:
        if target is None:
            raise fail("--supply-chain checks an image: give its reference as TARGET")
        from conveyor.supply_chain.chain import check_results

        with handle_errors():
            results = check_results(target, trusted_key, pull, tls_verify)
        _report(results, target, junit, json_report, as_json_out)
        return
    if project is None and Path("conveyor.yaml").is_file():
        project = Path(".")
    with handle_errors():
        contract = load_contract(contract_file)
        custom = load_custom_checks(project, checks or [])
        if write_contract is not None:
            if target is None:
                raise fail("--write-contract records from a running TARGET")
            with open_target(
                target, image=image, timeout=startup_timeout, on_notice=lambda text: stderr.print(f"note: {text}")
            ) as running:
                ctx = Context(running.url, with_v2_model(contract, running.model_name))
                recorded = record_contract(ctx, example, running.model_name, sample)
                ctx.close()
            write_contract.write_text(dump_contract(recorded))
            stdout.print(
                f"wrote {write_contract}: review the golden answers, the schema and the latency "
                "objective before committing it"
            )
            return
        results = verify_target(
            target,
            contract,
            image=image,
            timeout=startup_timeout,
            project=project,
            model_ref=model_ref,
            model_path=model_path,
            custom=custom,
            skip=skip or [],
            parallel=parallel,
            on_notice=lambda text: stderr.print(f"note: {text}"),
            incumbent=incumbent,
        )
    if record:
        from conveyor.verify.recorded import record_outcome

        with handle_errors():
            kept_on = record_outcome(target or "", results)
        stderr.print(f"recorded the outcome on {kept_on}", highlight=False)
    _report(results, target or "(static checks)", junit, json_report, as_json_out)


def _report(
    results: list[CheckResult], target: str, junit: Path | None, json_report: Path | None, as_json_out: bool
) -> None:
    from conveyor.verify.reports import as_json, ok, print_table, write_json, write_junit

    if junit:
        write_junit(results, target, junit)
    if json_report:
        write_json(results, target, json_report)
    if as_json_out:
        print_json(as_json(results, target))
    else:
        print_table(results, target, stdout)
    if not ok(results):
        if not as_json_out:
            stderr.print("[red]verification failed[/red]")
        raise typer.Exit(EXIT_FAILURE)
