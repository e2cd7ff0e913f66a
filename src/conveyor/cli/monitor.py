"""``conveyor monitor MODEL --logs DEST``: served traffic, window by window, against the reference.

Exit 0 when the latest judged window holds no drift, 1 when it does (a CI job or a pipeline
trigger can act on it), 2 for a bad option, 4 when the model or its log is not there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.output import EXIT_FAILURE, ProgressBar, handle_errors, new_table, print_json, stderr, stdout
from conveyor.errors import InvalidInput
from conveyor.registry.refs import looks_like_ref


def monitor(
    model: Annotated[str, typer.Argument(help="A registered version (name:N, name@alias) or a model folder.")],
    logs: Annotated[
        str, typer.Option(metavar="DEST", help="The payload log the server writes (serve --log-payloads DEST).")
    ],
    reference: Annotated[
        Path | None,
        typer.Option(help="Reference rows (CSV, JSON, JSON Lines, text) [default: the version's stored profile]."),
    ] = None,
    window: Annotated[int, typer.Option(min=10, help="Items (texts, rows) per window.")] = 500,
    psi: Annotated[float, typer.Option(min=0.0, help="A column drifts at this population stability index.")] = 0.2,
    alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="... and its test (KS or chi-square) has a p-value below this.")
    ] = 0.01,
    min_items: Annotated[int, typer.Option(min=1, help="A smaller window is shown, not judged.")] = 100,
    min_accuracy: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Alarm when live accuracy (from POST /feedback) falls below this."),
    ] = None,
    max_error: Annotated[
        float | None, typer.Option(min=0.0, help="A regressor: alarm when the live mean absolute error exceeds this.")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report with charts here.")] = None,
    export_labelled: Annotated[
        Path | None,
        typer.Option(
            help="Write the logged items that feedback labelled as CSV (inputs, the true label or value, "
            "request_id, time): served traffic for the next training run."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Compare windows of logged traffic with MODEL's reference profile: drift per input and output."""
    from conveyor.monitoring.drift import Thresholds
    from conveyor.monitoring.run import monitor_log

    with handle_errors():
        resolved = _resolve(model)
        result = monitor_log(
            resolved, logs, reference, window, Thresholds(psi, alpha, min_items, min_accuracy, max_error)
        )
        if html is not None:
            from conveyor.monitoring.report import write_html

            write_html(result, html)
        if export_labelled is not None:
            from conveyor.monitoring.run import export_labelled as write_labelled

            exported = write_labelled(result.labelled, export_labelled)
    if as_json:
        print_json(result.as_dict())
    else:
        _render(result)
        if html is not None:
            stderr.print(f"report: {html}")
    if export_labelled is not None:
        stderr.print(f"labelled traffic: {exported} rows in {export_labelled}")
    if result.latest_drifted:
        raise typer.Exit(EXIT_FAILURE)


def _resolve(model: str) -> Any:
    from conveyor.serving.spec import resolve_model

    if Path(model).exists() or not looks_like_ref(model):
        if not Path(model).exists():
            raise InvalidInput(f"{model}: no such model folder, and not a registry reference (name:N, name@alias)")
        return resolve_model(model)
    from conveyor.serving.fetch import fetch_for_serving

    with ProgressBar() as bar:
        served = fetch_for_serving(model, bar)
    return resolve_model(
        str(served.model),
        str(served.tokenizer) if served.tokenizer else None,
        served.version.name,
        str(served.version.version),
    )


def _quality(quality: dict[str, Any] | None) -> str:
    if quality is None:
        return "-"
    if "accuracy" in quality:
        return f"accuracy {quality['accuracy']:.1%} of {quality['labelled']}"
    return f"MAE {quality['mae']:.4g} of {quality['labelled']}"


def _render(result: Any) -> None:
    windows = new_table(
        f"{result.model}:{result.version} traffic against its reference ({result.profile.source}, "
        f"{result.profile.items} items): {result.records} requests in {result.files} files"
    )
    for column in ("window", "items", "from", "to", "drifted", "live quality"):
        windows.add_column(column, justify="right" if column in ("window", "items") else "left")
    for w in result.windows:
        verdict = ", ".join(w.drifted) if w.drifted else ("none" if w.judged else "too few items to judge")
        quality = _quality(w.quality)
        windows.add_row(
            str(w.index),
            str(w.items),
            w.start,
            w.end,
            f"[red]{verdict}[/red]" if w.drifted else verdict,
            f"[red]{quality}[/red]" if w.quality_failed else quality,
        )
    stdout.print(windows)
    latest = result.latest
    if latest is None:
        stdout.print("no window has enough items to judge yet")
        return
    limits = result.thresholds
    detail = new_table(f"window {latest.index}: drift at PSI >= {limits.psi} and p < {limits.alpha}")
    for column in ("column", "side", "PSI", "p", "KS", "JS", "reference", "window", "drift"):
        detail.add_column(column)
    for c in latest.columns:
        ks = "" if c.ks_statistic is None else f"{c.ks_statistic:.3f}"
        js = "" if c.js_distance is None else f"{c.js_distance:.3f}"
        ref = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{v}" for k, v in c.reference.items())
        win = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{v}" for k, v in c.window.items())
        flag = "[red]yes[/red]" if c.drifted else "no"
        detail.add_row(c.name, c.side, f"{c.psi:.3f}", f"{c.pvalue:.2g}", ks, js, ref, win, flag)
    stdout.print(detail)
    if result.unreadable:
        stderr.print(f"warning: {result.unreadable} log lines were not JSON and were skipped")
