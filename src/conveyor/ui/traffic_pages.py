"""The dashboard's "served traffic" panel: a version's payload log against its reference profile.

The same judgement as ``conveyor monitor`` (``monitoring.run.monitor_log``: windows, PSI and a
test per column, live accuracy or error from ``POST /feedback`` where a window has enough labels,
and its label-free estimate), drawn as charts on the version
page and on a rollout's page (for its stable and canary versions).  The dashboard reads the log
where ``conveyor ui --payload-logs DEST`` says the servers (or the router) write it; without it,
or for a version registered without ``--reference``, the panel says how to get one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.errors import ConveyorError, NotFound
from conveyor.extras import needs
from conveyor.registry.protocol import Registry

with needs("ui", "the dashboard (conveyor ui)"):
    from markupsafe import Markup

MAX_COLUMNS_CHARTED = 6  # the columns that moved most; every column is in the table
MAX_WINDOWS_LISTED = 20


@dataclass(frozen=True)
class TrafficSettings:
    logs: str | None = None  # the payload log's DEST (a folder or s3://bucket/prefix)
    window: int = 500  # logged items per window, as `conveyor monitor --window`
    since: str | None = None  # as `conveyor monitor --since`
    window_time: str | None = None  # as `conveyor monitor --window-time`


def traffic_panel(registry: Registry, ref: str, settings: TrafficSettings) -> dict[str, Any]:
    """The panel's context for one registered version: ``state`` says what it can show."""
    if not settings.logs:
        return {"ref": ref, "state": "off"}
    try:
        version = registry.resolve(ref)
    except NotFound:
        return {"ref": ref, "state": "unregistered"}
    from conveyor.monitoring.profile import PROFILE_FILE  # scipy, numpy: only where a log is read
    from conveyor.monitoring.run import monitor_log
    from conveyor.monitoring.thresholds import Thresholds
    from conveyor.monitoring.windows import span_of
    from conveyor.serving.spec import locate_model, resolve_model

    if not any(f.path == PROFILE_FILE for f in version.files):
        return {"ref": version.ref, "state": "no-profile"}
    _, folder = registry.cached(version.ref)
    model, tokenizer = locate_model(folder)
    resolved = resolve_model(str(model), str(tokenizer) if tokenizer else None, version.name, str(version.version))
    try:
        # no embedding drift on a page view: embedding each window's texts takes seconds (conveyor monitor has it)
        span = span_of(settings.since, None, settings.window_time)
        result = monitor_log(resolved, settings.logs, None, settings.window, Thresholds(), embeddings=False, span=span)
    except NotFound:
        return {"ref": version.ref, "state": "no-log", "logs": settings.logs}
    except ConveyorError as exc:
        return {"ref": version.ref, "state": "error", "error": str(exc)}
    return shown_panel(version.ref, result, settings.window)


def shown_panel(ref: str, result: Any, window: int) -> dict[str, Any]:
    """The panel's context for a monitoring pass over ``ref``'s log (``monitoring.run.MonitorResult``)."""
    return {
        "ref": ref,
        "state": "shown",
        "window": window,
        "result": result,
        "windows": list(reversed(result.windows[-MAX_WINDOWS_LISTED:])),
        "latest": result.latest,
        "quality": _headline(result.windows),
        "charts": _charts(result.windows, result.thresholds),
    }


def _headline(windows: list[Any]) -> str | None:
    """The latest labelled window's live quality in words, with the labels behind it: never a rate
    from fewer labels than the threshold."""
    labelled = [w for w in windows if w.quality]
    if not labelled:
        return None
    window = labelled[-1]
    quality = window.quality
    count = quality["labelled"]
    if not quality.get("enough_labels"):
        return f"live quality in window {window.index}: not enough labels ({count} of {quality['min_labels']})"
    if "accuracy" in quality:
        low, high = quality["accuracy_ci"]
        said = f"accuracy {quality['accuracy']:.1%} (95%: {low:.1%} to {high:.1%})"
    else:
        low, high = quality["mae_ci"]
        said = f"MAE {quality['mae']:.4g} (95%: {low:.4g} to {high:.4g})"
    return f"live {said} on {count} labels in window {window.index}"


def _charts(windows: list[Any], thresholds: Any = None) -> list[Any]:
    """The PSI of the columns that moved most (log scale, the threshold drawn) and live quality
    beside its estimate: the report's charts (``monitoring/window_charts.py``)."""
    from conveyor.monitoring import window_charts
    from conveyor.monitoring.thresholds import Thresholds

    limits = thresholds or Thresholds()
    charted = window_charts.peak_columns(windows, MAX_COLUMNS_CHARTED)
    drawn = [window_charts.psi_chart(windows, limits, charted), window_charts.quality_chart(windows, limits)]
    return [Markup(chart) for chart in drawn if chart]
