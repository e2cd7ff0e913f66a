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
from conveyor.registry.protocol import Registry
from conveyor.ui.charts import line_chart

MAX_COLUMNS_CHARTED = 6  # the columns that moved most; every column is in the table
MAX_WINDOWS_LISTED = 20
PSI_SHOWN = 1.0


@dataclass(frozen=True)
class TrafficSettings:
    logs: str | None = None  # the payload log's DEST (a folder or s3://bucket/prefix)
    window: int = 500  # logged items per window, as `conveyor monitor --window`


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
    from conveyor.serving.spec import locate_model, resolve_model

    if not any(f.path == PROFILE_FILE for f in version.files):
        return {"ref": version.ref, "state": "no-profile"}
    _, folder = registry.cached(version.ref)
    model, tokenizer = locate_model(folder)
    resolved = resolve_model(str(model), str(tokenizer) if tokenizer else None, version.name, str(version.version))
    try:
        # no embedding drift on a page view: embedding each window's texts takes seconds (conveyor monitor has it)
        result = monitor_log(resolved, settings.logs, None, settings.window, Thresholds(), embeddings=False)
    except NotFound:
        return {"ref": version.ref, "state": "no-log", "logs": settings.logs}
    except ConveyorError as exc:
        return {"ref": version.ref, "state": "error", "error": str(exc)}
    judged = [w for w in result.windows if w.judged]
    return {
        "ref": version.ref,
        "state": "shown",
        "window": settings.window,
        "result": result,
        "windows": list(reversed(result.windows[-MAX_WINDOWS_LISTED:])),
        "latest": result.latest,
        "quality": _headline(result.windows),
        "charts": _charts(judged),
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


def _charts(judged: list[Any]) -> list[Any]:
    if not judged:
        return []
    peaks: dict[str, float] = {}
    for window in judged:
        for column in window.columns:
            if column.psi is not None:
                peaks[column.name] = max(peaks.get(column.name, 0.0), column.psi)
    charted = sorted(peaks, key=peaks.__getitem__, reverse=True)[:MAX_COLUMNS_CHARTED]
    psi = {
        name: [(float(w.index), _capped(next((c.psi for c in w.columns if c.name == name), None))) for w in judged]
        for name in charted
    }
    x_range = (f"window {judged[0].index}", f"window {judged[-1].index}")
    title = f"PSI per window (drift at 0.2 with p < 0.01; shown up to {PSI_SHOWN:g})"
    charts = [line_chart(title, psi, x_range=x_range, width=760)]
    quality = [(float(w.index), _quality(w.quality)) for w in judged]
    estimated = [(float(w.index), _quality(w.estimated)) for w in judged]
    if any(value is not None for _, value in quality + estimated):
        classifier = any("accuracy" in (w.quality or w.estimated or {}) for w in judged)
        series = {"live": quality, "estimated": estimated}
        title = "live quality (windows with enough labels) and its estimate"
        charts.append(line_chart(title, series, "%" if classifier else "", x_range=x_range))
    return charts


def _capped(psi: float | None) -> float | None:
    """A PSI of 16 (a feature moved wholesale) would flatten every other line: past ``PSI_SHOWN``
    a shift is off any scale worth reading, and the table keeps the real number."""
    return None if psi is None else min(psi, PSI_SHOWN)


def _quality(quality: dict[str, Any] | None) -> float | None:
    """A window's accuracy in percent, or its MAE; None without one, or with too few labels."""
    if not quality or quality.get("enough_labels") is False:
        return None
    return quality["accuracy"] * 100 if "accuracy" in quality else quality.get("mae")
