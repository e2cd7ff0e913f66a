"""The charts of a monitoring pass, for the HTML report and the dashboard's traffic panel alike.

A pass (``monitoring.run.MonitorResult``) is drawn the same way wherever a person reads it:

* PSI per window, one line per column, on a log scale (a calm 0.02 and a wholesale 3.6 both
  readable, nothing capped) with the drift threshold as a dashed line;
* live quality per window (accuracy with its 95% interval, or MAE) beside its label-free
  estimate (CBPE's accuracy with its expected range, or DLE's MAE), with the alarm bound where
  one is set; a window with too few labels is a gap, never a point;
* a column's reference distribution against a window's, bin by bin (numeric: the reference's
  decile bins; categorical: its categories).

Numbers are drawn rounded (``charts.number``); the JSON output keeps them whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from conveyor.charts import bar_chart, line_chart, number
from conveyor.monitoring.drift import ColumnDrift, WindowDrift
from conveyor.monitoring.profile import OTHER, ColumnProfile
from conveyor.monitoring.thresholds import Thresholds

MAX_X_TICKS = 8


def window_ticks(windows: Sequence[WindowDrift]) -> list[tuple[float, str]]:
    """Labels under the x axis: every window when few, else about ``MAX_X_TICKS`` evenly spread."""
    if not windows:
        return []
    step = max(1, -(-len(windows) // MAX_X_TICKS))
    chosen = list(windows[::step])
    if chosen[-1] is not windows[-1]:
        chosen[-1] = windows[-1]
    return [(float(w.index), str(w.index)) for w in chosen]


def psi_chart(
    windows: Sequence[WindowDrift], thresholds: Thresholds, columns: Sequence[str] | None = None, width: int = 760
) -> str | None:
    """PSI of ``columns`` (default: every column with one) over the judged windows."""
    judged = [w for w in windows if w.judged]
    names = list(columns) if columns is not None else _psi_columns(judged)
    if not judged or not names:
        return None
    series = {name: [(float(w.index), _psi(w, name)) for w in judged] for name in names}
    return line_chart(
        f"PSI per window (drift at {number(thresholds.psi)} with p < {number(thresholds.alpha)})",
        series,
        width=width,
        x_ticks=window_ticks(judged),
        x_label="window",
        y_label="PSI",
        thresholds=[("drift at PSI", thresholds.psi)],
        log=True,
    )


def column_psi_chart(windows: Sequence[WindowDrift], thresholds: Thresholds, name: str) -> str | None:
    """One column's PSI over the judged windows (the report's small chart beside its histogram);
    an embedding column's squared MMD instead, whose p-value alone decides (no threshold line)."""
    judged = [w for w in windows if w.judged and _column(w, name) is not None]
    if not judged:
        return None
    if all(_psi(w, name) is None for w in judged):
        mmd = [(float(w.index), getattr(_column(w, name), "mmd", None)) for w in judged]
        return line_chart(
            "squared MMD per window", {name: mmd}, width=380, height=180, x_ticks=window_ticks(judged),
            x_label="window", y_label="MMD²",
        )  # fmt: skip
    return line_chart(
        "PSI per window",
        {name: [(float(w.index), _psi(w, name)) for w in judged]},
        width=380,
        height=180,
        x_ticks=window_ticks(judged),
        x_label="window",
        y_label="PSI",
        thresholds=[("drift at", thresholds.psi)],
        log=True,
    )


def peak_columns(windows: Sequence[WindowDrift], count: int) -> list[str]:
    """The ``count`` columns whose PSI peaked highest over the windows."""
    peaks: dict[str, float] = {}
    for window in windows:
        for column in window.columns:
            if column.psi is not None:
                peaks[column.name] = max(peaks.get(column.name, 0.0), column.psi)
    return sorted(peaks, key=peaks.__getitem__, reverse=True)[:count]


def quality_chart(
    windows: Sequence[WindowDrift], thresholds: Thresholds, width: int = 760, reference: dict[str, Any] | None = None
) -> str | None:
    """Live quality and its estimate per window, with their intervals; None without either."""
    classifier = any("accuracy" in (w.quality or w.estimated or {}) for w in windows)
    live = [(float(w.index), _value(w.quality, classifier)) for w in windows]
    estimated = [(float(w.index), _value(w.estimated, classifier)) for w in windows]
    if all(v is None for _, v in live + estimated):
        return None
    scale = 100.0 if classifier else 1.0
    key, estimate_key = ("accuracy_ci", "accuracy_range") if classifier else ("mae_ci", None)
    bands = {
        "live": _band(windows, lambda w: w.quality if _value(w.quality, classifier) is not None else None, key, scale),
        "estimated": _band(windows, lambda w: w.estimated, estimate_key, scale) if estimate_key else [],
    }
    limits: list[tuple[str, float]] = []
    if classifier and thresholds.min_accuracy is not None:
        limits.append(("alarm below", thresholds.min_accuracy * 100))
    if not classifier and thresholds.max_error is not None:
        limits.append(("alarm above", thresholds.max_error))
    if reference and _value(reference, classifier) is not None:
        limits.append(("reference", _value(reference, classifier) or 0.0))
    metric = "accuracy" if classifier else "MAE"
    return line_chart(
        f"live {metric} (windows with at least {thresholds.min_labels} labels, 95% interval) and its estimate",
        {"live": live, "estimated": estimated},
        "%" if classifier else "",
        width=width,
        x_ticks=window_ticks(windows),
        x_label="window",
        y_label=metric,
        thresholds=limits,
        bands={name: rows for name, rows in bands.items() if any(rows)},
    )


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Names of the bins (-inf, e1], (e1, e2], ..., (ek, inf): edges rounded to the fewest
    significant figures that keep every edge distinct."""
    if not edges:
        return ["all"]
    for digits in range(2, 8):
        shown = [number(e, digits) for e in edges]
        if len(set(shown)) == len(shown):
            break
    return [f"≤ {shown[0]}", *(f"{a} to {b}" for a, b in pairwise(shown)), f"> {shown[-1]}"]


def histogram(reference: ColumnProfile, column: ColumnDrift, window: int) -> str | None:
    """A column's reference shares against window ``window``'s, per bin; None for an embedding."""
    if reference.kind == "numeric" and column.window_shares:
        bins, ref, win = bin_labels(reference.edges), reference.shares, column.window_shares
    elif reference.kind == "categorical" and column.window_categories:
        names = list(reference.categories)
        names += [n for n in column.window_categories if n not in reference.categories]
        if OTHER in names:  # the long tail last
            names.append(names.pop(names.index(OTHER)))
        bins = names
        ref = [reference.categories.get(n, 0.0) for n in names]
        win = [column.window_categories.get(n, 0.0) for n in names]
    else:
        return None
    return bar_chart(
        "reference against the window",
        bins,
        {"reference": [s * 100 for s in ref], f"window {window}": [s * 100 for s in win]},
    )


def _psi_columns(windows: Sequence[WindowDrift]) -> list[str]:
    return list(dict.fromkeys(c.name for w in windows for c in w.columns if c.psi is not None))


def _column(window: WindowDrift, name: str) -> ColumnDrift | None:
    return next((c for c in window.columns if c.name == name), None)


def _psi(window: WindowDrift, name: str) -> float | None:
    column = _column(window, name)
    return None if column is None else column.psi


def _value(quality: dict[str, Any] | None, classifier: bool) -> float | None:
    """Accuracy in percent or MAE; None without one, or with too few labels behind it."""
    if not quality or quality.get("enough_labels") is False:
        return None
    if classifier:
        return quality["accuracy"] * 100 if "accuracy" in quality else None
    return quality.get("mae")


def _band(windows: Sequence[WindowDrift], pick: Any, key: str, scale: float) -> list[tuple[float, float, float] | None]:
    """Each window's interval, scaled; None where it has none (a gap)."""
    rows: list[tuple[float, float, float] | None] = []
    for window in windows:
        interval = (pick(window) or {}).get(key)
        rows.append((float(window.index), interval[0] * scale, interval[1] * scale) if interval else None)
    return rows
