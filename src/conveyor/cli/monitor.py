"""``conveyor monitor MODEL --logs DEST``: served traffic, window by window, against the reference.

Exit 0 when the latest judged window holds no drift, 1 when it does (a CI job or a pipeline
trigger can act on it; ``--no-fail-on-drift``: 0 either way), 2 for a bad option, 4 when the model or
its log is not there, or an export would hold no labelled rows.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.output import (
    EXIT_FAILURE,
    ProgressBar,
    handle_errors,
    new_table,
    print_json_document,
    stderr,
    stdout,
)
from conveyor.cli.settings_options import with_model_options
from conveyor.monitoring.retention import Retention
from conveyor.monitoring.thresholds import Thresholds


@with_model_options(Thresholds)
@with_model_options(Retention)
def monitor(
    model: Annotated[str, typer.Argument(help="A registered version (name:N, name@alias) or a model folder.")],
    logs: Annotated[
        str, typer.Option(metavar="DEST", help="The payload log the servers or the router write (--log-payloads DEST).")
    ],
    reference: Annotated[
        Path | None,
        typer.Option(help="Reference rows (CSV, JSON, JSON Lines, text) [default: the version's stored profile]."),
    ] = None,
    window: Annotated[int, typer.Option(min=10, help="Items (texts, rows) per window.")] = 500,
    window_time: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Windows of this much time each instead (30m, 1h, 1d), aligned to the clock: one window per hour.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Judge the traffic logged since then: a duration back from now (30m, 12h, 7d) or an ISO date or "
            "time (UTC unless it says) [default: all of the log].",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="WHEN", help="... and until then (the same forms) [default: now].")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report with charts here.")] = None,
    export_labelled: Annotated[
        Path | None,
        typer.Option(
            help="Write the logged items that feedback labelled as CSV (inputs, the true label or value, "
            "request_id, time): served traffic for the next training run."
        ),
    ] = None,
    export_holdout: Annotated[
        Path | None,
        typer.Option(
            help="Write the most recent --holdout share of the labelled items here instead (same columns): "
            "traffic a retrained version is judged on (`conveyor models challenge`) and never trained on."
        ),
    ] = None,
    holdout: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="The share of labelled items --export-holdout keeps.")
    ] = 0.3,
    fail_on_drift: Annotated[
        bool,
        typer.Option(
            help="Exit 1 when the latest judged window drifted (--no-fail-on-drift: exit 0 whatever the verdict, "
            "for a step that exports the traffic a drift started it for)."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    **limits: Any,
) -> None:
    """Compare windows of logged traffic with MODEL's reference profile: drift per input and output.

    Each finished log file is read once and kept as a summary beside the log (.summaries/), so a
    later call reads only the files that rotated since. --log-keep-days/--log-keep-mib remove older log
    files (and their summaries) first."""
    from conveyor.monitoring.retention import apply_retention
    from conveyor.monitoring.run import monitor_log
    from conveyor.monitoring.summaries import SummaryStore
    from conveyor.monitoring.windows import span_of

    with handle_errors():
        thresholds = Thresholds(**{k: v for k, v in limits.items() if k in Thresholds.model_fields})
        retention = Retention(**{k: v for k, v in limits.items() if k in Retention.model_fields})
        span = span_of(since, until, window_time)
        if html is not None:  # a missing extra is named before the log is read, not after
            from conveyor.monitoring.report import write_html
        resolved = resolve_served(model)
        if retention.bounded:
            store = SummaryStore(logs, resolved.spec.name, resolved.spec.version)
            removed = apply_retention(store, retention)
            if removed:
                stderr.print(f"retention: removed {len(removed)} log files and their summaries")
        wanted = export_labelled is not None or export_holdout is not None
        result = monitor_log(resolved, logs, reference, window, thresholds, span=span, labelled=wanted)
        if html is not None:
            write_html(result, html)
        exported = _export(result.labelled, export_labelled, export_holdout, holdout)
    if as_json:
        print_json_document(result.as_dict())
    else:
        _render(result)
        if html is not None:
            stderr.print(f"report: {html}")
    for path, count in exported:
        stderr.print(f"labelled traffic: {count} rows in {path}")
    if result.latest_drifted and fail_on_drift:
        raise typer.Exit(EXIT_FAILURE)


def _export(
    rows: list[dict[str, Any]], training: Path | None, held_out: Path | None, share: float
) -> list[tuple[Path, int]]:
    """The labelled rows to ``training``, the most recent ``share`` of them to ``held_out`` instead.

    A file that would be empty is refused before anything is written: a step after it must never
    go on with no rows, or with an older run's file of the same name."""
    from conveyor.errors import NotFound
    from conveyor.monitoring.run import export_labelled

    cut = len(rows) - round(len(rows) * share) if held_out is not None else len(rows)
    parts = [(path, part) for path, part in ((training, rows[:cut]), (held_out, rows[cut:])) if path is not None]
    for path, part in parts:
        if not part:
            raise NotFound(
                f"no labelled traffic for {path}: {len(rows)} logged items have feedback (POST /feedback), "
                "nothing was exported"
            )
    return [(path, export_labelled(part, path)) for path, part in parts]


def resolve_served(model: str) -> Any:
    """MODEL (a folder or a registry reference) as the server would load it, with a progress bar."""
    from conveyor.serving.fetch import resolve_served as resolve

    if not sys.stderr.isatty():  # a bar only where someone watches (rich stays unimported in a scheduled job)
        return resolve(model)
    with ProgressBar(enabled=stderr.rich().is_terminal) as bar:
        return resolve(model, bar)


def _interval(ci: list[float] | None, percent: bool) -> str:
    if not ci:
        return ""
    return f" [{ci[0]:.1%}, {ci[1]:.1%}]" if percent else f" [{ci[0]:.4g}, {ci[1]:.4g}]"


def _quality(quality: dict[str, Any] | None) -> str:
    """A window's realised quality with its interval and the count of labels behind it."""
    if quality is None:
        return "-"
    labelled, needed = quality["labelled"], quality.get("min_labels", 0)
    if not quality.get("enough_labels", True):
        return f"not enough labels ({labelled} of {needed})"
    if "accuracy" in quality:
        return f"accuracy {quality['accuracy']:.1%}{_interval(quality.get('accuracy_ci'), True)} of {labelled}"
    return f"MAE {quality['mae']:.4g}{_interval(quality.get('mae_ci'), False)} of {labelled}"


def _estimated(estimated: dict[str, Any] | None) -> str:
    """A window's label-free estimate (CBPE or DLE)."""
    if estimated is None:
        return "-"
    if "accuracy" in estimated:
        low, high = estimated["accuracy_range"]
        return f"{estimated['method']} accuracy {estimated['accuracy']:.1%} [{low:.1%}, {high:.1%}]"
    return f"{estimated['method']} MAE {estimated['mae']:.4g}, RMSE {estimated['rmse']:.4g}"


def _render_quality(quality: dict[str, Any], index: int) -> None:
    """The latest labelled window's evidence: per class counts, precision, recall and F1, or RMSE."""
    if "classes" not in quality:
        rmse = quality["rmse"]
        stdout.print(
            f"window {index}: RMSE {rmse:.4g}{_interval(quality.get('rmse_ci'), False)} of {quality['labelled']}"
        )
        return
    table = new_table(
        f"window {index}: live quality of {quality['labelled']} labelled items (95% intervals: Wilson, F1 bootstrap)"
    )
    for column in ("class", "true", "predicted", "correct", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "class" else "right")

    def rate(value: float | None, ci: list[float] | None) -> str:
        return "-" if value is None else f"{value:.1%}{_interval(ci, True)}"

    for label, c in quality["classes"].items():
        table.add_row(
            label,
            str(c["true"]),
            str(c["predicted"]),
            str(c["correct"]),
            rate(c["precision"], c["precision_ci"]),
            rate(c["recall"], c["recall_ci"]),
            rate(c["f1"], c["f1_ci"]),
        )
    macro = quality["macro"]
    table.add_row(
        "macro",
        "",
        "",
        "",
        rate(macro["precision"], None),
        rate(macro["recall"], None),
        rate(macro["f1"], macro["f1_ci"]),
    )
    stdout.print(table)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _short(category: str) -> str:
    """A hashed category (``--log-hash``) by its first 12 digits, as git names a commit: 64 would fill the column."""
    return _HASHED.sub(r"\1", category)


_HASHED = re.compile(r"^(sha256:[0-9a-f]{12})[0-9a-f]{52}$")


def _render_self_check(check: Any) -> None:
    """The profile's own false-alarm rate: how far the thresholds can be trusted on this data."""
    if check is None:
        stdout.print("reference self-check: none (the profile predates it: profile the reference again)")
        return
    columns = ", ".join(f"{name} {count}" for name, count in sorted(check.columns.items()))
    stdout.print(
        f"reference self-check: {check.false_alarms} of {check.splits} splits of the reference into halves "
        f"({check.half} items each) raised drift at PSI >= {check.psi}, p < {check.alpha}: "
        f"a false-alarm rate of {check.rate:.0%}" + (f" ({columns})" if columns else "")
    )


def _render(result: Any) -> None:
    from conveyor.monitoring.report import when  # the report's charts need the monitor extra: not at start-up

    windows = new_table(
        f"{result.model}:{result.version} traffic against its reference ({result.profile.source}, "
        f"{result.profile.items} items): {result.records} requests in {result.files} files"
    )
    for column in ("window", "items", "from (UTC)", "to (UTC)", "drift share", "drifted", "live quality", "estimated"):
        windows.add_column(
            column,
            justify="right" if column in ("window", "items", "drift share") else "left",
            overflow="fold",
            min_width=10 if column.endswith("(UTC)") else None,  # a date, then its time, each on one line
        )
    for w in result.windows:
        verdict = ", ".join(w.drifted) if w.drifted else ("none" if w.judged else "too few items to judge")
        quality = _quality(w.quality)
        share = "" if w.drift_share is None else f"{len(w.drifted)}/{len(w.columns)}"
        windows.add_row(
            str(w.index),
            str(w.items),
            when(w.start),
            when(w.end),
            share,
            f"[red]{verdict}[/red]" if w.drifted else verdict,
            f"[red]{quality}[/red]" if w.quality_failed else quality,
            _estimated(w.estimated),
        )
    stdout.print(windows)
    evidenced = [w for w in result.windows if w.quality and w.quality.get("enough_labels")]
    if evidenced:
        _render_quality(evidenced[-1].quality, evidenced[-1].index)
    _render_self_check(result.profile.self_check)
    for note in result.notes:
        stderr.print(f"note: {note}", highlight=False)
    latest = result.latest
    if latest is None:
        stdout.print("no window has enough items to judge yet")
        return
    limits = result.thresholds
    detail = new_table(
        f"window {latest.index}: drift at PSI >= {limits.psi} (embeddings: any MMD) and p < {limits.alpha} "
        f"after Benjamini-Hochberg across its {len(latest.columns)} columns"
    )
    # fold, never cut: on a narrow terminal a column's name wraps whole instead of ending in "…";
    # MMD only where a column has one (a text model's embedding): an empty column costs a tabular table its width
    with_mmd = any(c.mmd is not None for c in latest.columns)
    for column in ("column", "side", "PSI", "MMD", "p", "p (BH)", "KS", "JS", "reference", "window", "drift"):
        if column != "MMD" or with_mmd:
            detail.add_column(column, overflow="fold")
    for c in latest.columns:
        ref = ", ".join(f"{_short(k)} {v:.3g}" if isinstance(v, float) else f"{v}" for k, v in c.reference.items())
        win = ", ".join(f"{_short(k)} {v:.3g}" if isinstance(v, float) else f"{v}" for k, v in c.window.items())
        flag = "[red]yes[/red]" if c.drifted else "no"
        detail.add_row(
            c.name,
            c.side,
            _number(c.psi, ".3f"),
            *([_number(c.mmd, ".4f")] if with_mmd else []),
            f"{c.pvalue:.2g}",
            _number(c.adjusted_pvalue, ".2g"),
            _number(c.ks_statistic, ".3f"),
            _number(c.js_distance, ".3f"),
            ref,
            win,
            flag,
        )
    stdout.print(detail)
    if result.unreadable:
        stderr.print(f"warning: {result.unreadable} log lines were not JSON and were skipped")
