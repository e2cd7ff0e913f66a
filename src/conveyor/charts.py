"""Charts drawn on the server as SVG, for the dashboard and the HTML monitoring report alike.

Nothing for the browser to compute and no script: the dashboard pushes charts over SSE as HTML,
and ``conveyor monitor --html`` writes a page a CI job keeps as an artifact and anyone opens
offline.  Both draw the same two kinds, so they are drawn here once:

* ``line_chart``: a few series of (x, value) points on one x axis, a y axis with ticks and a
  title, dashed threshold lines labelled with their value, optional interval bands.  Gaps
  (``None``) break a line rather than drawing it through zero ("no traffic" is not "no
  latency").  The y axis reaches the largest value drawn, never capped, so a PSI of 3.6 does not
  look like 1; ``log=True`` draws it on decades, where 0.05 and 3.6 are both readable.
* ``bar_chart``: shares per bin, a bar per series side by side (a column's reference against its
  latest window).

The legend is an HTML list beside the SVG that the browser wraps: a long column name takes the
room it needs and can never be drawn over another one.  Styles are inline attributes, so a chart
looks the same on a dashboard page and in a standalone report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

COLOURS = {"stable": "#2563eb", "canary": "#ea580c", "reference": "#9ca3af", "live": "#2563eb", "estimated": "#ea580c"}
FALLBACK = ("#16a34a", "#9333ea", "#db2777", "#0891b2", "#65a30d", "#b45309", "#4f46e5", "#be123c")
THRESHOLD_COLOUR = "#b91c1c"
AXIS_COLOUR = "#9ca3af"
GRID_COLOUR = "#eef0f3"
TICK_STYLE = 'font-size="10" fill="#6b7280"'
CHAR_PX = 6.2  # about one character of a 10 px tick label: room for the y axis's labels
LOG_FLOOR = 1e-3  # a log axis starts no lower: smaller values (and zeros) sit on its floor
FIGURE_STYLE = "margin:0 0 10px;display:inline-block;vertical-align:top;max-width:100%"
SVG_STYLE = "display:block;background:#fff;border:1px solid #e5e7eb;max-width:100%;height:auto"
SWATCH_STYLE = "display:inline-block;width:14px;margin-right:4px;vertical-align:middle"
ENTRY_STYLE = "font-weight:600;white-space:nowrap"
TITLE_STYLE = "font-size:13px;font-weight:600;color:#374151"
LEGEND_STYLE = "list-style:none;margin:2px 0 4px;padding:0;display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px"

Points = Sequence[tuple[float, float | None]]


def number(value: float | None, digits: int = 3) -> str:
    """A value as people read it: ``digits`` significant figures, no exponent for everyday sizes."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    if 1e-4 <= abs(value) < 1e6:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
        text = f"{round(value, decimals):.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value:.{digits - 1}e}"


def colour_of(name: str, index: int) -> str:
    return COLOURS.get(name, FALLBACK[index % len(FALLBACK)])


def nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value``."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude * (1 + 1e-9):
            return step * magnitude
    return 10 * magnitude


class _Scale:
    """Values to pixels on the y axis, linear from 0 or logarithmic over whole decades."""

    def __init__(self, values: Sequence[float], log: bool, top: int, bottom: int) -> None:
        self.log, self.top, self.bottom = log, top, bottom
        if log:
            positive = [v for v in values if v > 0]
            high = max(positive, default=1.0)
            low = min(positive, default=LOG_FLOOR)
            self.low = 10 ** max(math.floor(math.log10(max(low, LOG_FLOOR))), math.log10(LOG_FLOOR))
            self.high = 10 ** math.ceil(math.log10(high) - 1e-9)
            if self.high <= self.low:
                self.high = self.low * 10
        else:
            self.low, self.high = 0.0, nice_max(max(values, default=0.0))

    def __call__(self, value: float) -> float:
        if self.log:
            share = (math.log10(max(value, self.low)) - math.log10(self.low)) / math.log10(self.high / self.low)
        else:
            share = value / self.high
        return round(self.bottom - share * (self.bottom - self.top), 1)

    def ticks(self) -> list[float]:
        if self.log:
            decades = round(math.log10(self.high / self.low))
            return [self.low * 10**i for i in range(decades + 1)]
        return [self.high * i / 4 for i in range(5)]


def _legend(entries: Sequence[tuple[str, str, str, bool]]) -> str:
    """One list item per series: its colour's swatch (dashed for a threshold) and its label."""
    items = []
    for name, colour, label, dashed in entries:
        line = "dashed" if dashed else "solid"
        swatch = f'<span style="{SWATCH_STYLE};border-top:3px {line} {colour}"></span>'
        items.append(
            f'<li class="legend-entry" data-series="{escape(name)}" style="color:{colour};{ENTRY_STYLE}">'
            f"{swatch}{escape(label)}</li>"
        )
    return f'<ul class="legend" style="{LEGEND_STYLE}">{"".join(items)}</ul>'


def _figure(title: str, legend: str, svg: str, kind: str) -> str:
    return (
        f'<figure class="chart" data-chart="{kind}" style="{FIGURE_STYLE}">'
        f'<figcaption><div class="chart-title" style="{TITLE_STYLE}">{escape(title)}</div>'
        f"{legend}</figcaption>{svg}</figure>"
    )


def _y_axis(parts: list[str], scale: _Scale, left: int, right: int, unit: str, y_label: str, height: int) -> None:
    for tick in scale.ticks():
        at = scale(tick)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{at}" y2="{at}" stroke="{GRID_COLOUR}"/>')
        parts.append(
            f'<text class="tick y-tick" x="{left - 4}" y="{at + 3}" text-anchor="end" {TICK_STYLE}>'
            f"{escape(number(tick) + unit)}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{left}" y1="{scale.top}" y2="{scale.bottom}" stroke="{AXIS_COLOUR}"/>'
    )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{right}" y1="{scale.bottom}" y2="{scale.bottom}" stroke="{AXIS_COLOUR}"/>'
    )
    if y_label:
        middle = (scale.top + scale.bottom) / 2
        parts.append(
            f'<text class="axis-label" transform="translate(11 {middle}) rotate(-90)" text-anchor="middle" '
            f"{TICK_STYLE}>{escape(y_label)}</text>"
        )


def line_chart(
    title: str,
    series: Mapping[str, Points],
    unit: str = "",
    width: int = 520,
    height: int = 170,
    x_range: tuple[str, str] | None = None,
    x_ticks: Sequence[tuple[float, str]] = (),
    x_label: str = "",
    y_label: str = "",
    thresholds: Sequence[tuple[str, float]] = (),
    bands: Mapping[str, Sequence[tuple[float, float, float] | None]] | None = None,
    log: bool = False,
) -> str:
    """One chart: a polyline per series, the last value of each in the legend.

    The x axis is seconds up to now unless ``x_ticks`` place labels (``window 3``) or ``x_range``
    names its two ends.  ``thresholds``: (label, value) drawn dashed across the chart and always
    inside its scale.  ``bands``: per series, (x, low, high) filled lightly behind its line (an
    interval); a ``None`` breaks the band as a gap breaks the line."""
    values = [v for points in series.values() for _, v in points if v is not None]
    values += [value for _, value in thresholds]
    values += [edge for rows in (bands or {}).values() for row in rows if row for edge in row[1:]]
    times = [t for points in series.values() for t, v in points if v is not None] + [t for t, _ in x_ticks]
    probe = _Scale(values, log, 0, 1)
    widest = max((len(number(t) + unit) for t in probe.ticks()), default=1)
    left = round(widest * CHAR_PX) + (22 if y_label else 10)
    right, top = width - 10, 10
    bottom = height - (30 if x_label else 18)
    scale = _Scale(values, log, top, bottom)
    start, end = (min(times), max(times)) if times else (0.0, 1.0)
    span = (end - start) or 1.0

    def x(t: float) -> float:
        return round(left + (t - start) / span * (right - left), 1)

    parts = [
        f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" style="{SVG_STYLE}">'
    ]
    _y_axis(parts, scale, left, right, unit, y_label + (" (log scale)" if log and y_label else ""), height)
    ticks = list(x_ticks) or ([(start, x_range[0]), (end, x_range[1])] if x_range else [])
    if not ticks and times:
        ticks = [(start, f"-{span:.0f}s"), (end, "now")]
    for t, label in ticks:
        anchor = "start" if x(t) - left < 20 else ("end" if right - x(t) < 20 else "middle")
        parts.append(
            f'<text class="tick x-tick" x="{x(t)}" y="{bottom + 13}" text-anchor="{anchor}" {TICK_STYLE}>'
            f"{escape(label)}</text>"
        )
    if x_label:
        parts.append(
            f'<text class="axis-label" x="{(left + right) / 2}" y="{height - 3}" text-anchor="middle" {TICK_STYLE}>'
            f"{escape(x_label)}</text>"
        )
    for index, (name, rows) in enumerate((bands or {}).items()):
        colour = colour_of(name, list(series).index(name) if name in series else index)
        for stretch in _runs(rows):
            outline = [f"{x(t)},{scale(high)}" for t, _, high in stretch]
            outline += [f"{x(t)},{scale(low)}" for t, low, _ in reversed(stretch)]
            parts.append(
                f'<polygon class="band" data-series="{escape(name)}" points="{" ".join(outline)}" '
                f'fill="{colour}" fill-opacity="0.12" stroke="none"/>'
            )
    legend: list[tuple[str, str, str, bool]] = []
    for index, (name, points) in enumerate(series.items()):
        colour = colour_of(name, index)
        runs: list[list[tuple[float, float]]] = [[]]
        for t, v in points:
            if v is None:
                runs.append([])
            else:
                runs[-1].append((x(t), scale(v)))
        for run in runs:
            if len(run) == 1:
                parts.append(f'<circle cx="{run[0][0]}" cy="{run[0][1]}" r="2.5" fill="{colour}"/>')
            elif run:
                drawn = " ".join(f"{a},{b}" for a, b in run)
                parts.append(
                    f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{colour}" '
                    f'stroke-width="1.8" points="{drawn}"/>'
                )
        last = next((v for _, v in reversed(points) if v is not None), None)
        legend.append((name, colour, f"{name} {number(last)}{unit}" if last is not None else f"{name} -", False))
    for label, value in thresholds:
        at, colour = scale(value), COLOURS.get(label, THRESHOLD_COLOUR)  # a bound in red, a reference in grey
        parts.append(
            f'<line class="threshold" data-value="{value:g}" x1="{left}" x2="{right}" y1="{at}" y2="{at}" '
            f'stroke="{colour}" stroke-width="1.2" stroke-dasharray="5 3"/>'
        )
        legend.append((label, colour, f"{label} {number(value)}{unit}", True))
    parts.append("</svg>")
    return _figure(title, _legend(legend), "".join(parts), "line")


def _runs(rows: Sequence[tuple[float, float, float] | None]) -> list[list[tuple[float, float, float]]]:
    """The rows between gaps, each run of two or more (one point has no width to fill)."""
    runs: list[list[tuple[float, float, float]]] = [[]]
    for row in rows:
        if row is None:
            runs.append([])
        else:
            runs[-1].append(row)
    return [run for run in runs if len(run) > 1]


def bar_chart(
    title: str,
    bins: Sequence[str],
    series: Mapping[str, Sequence[float]],
    unit: str = "%",
    width: int = 380,
    y_label: str = "share of items",
) -> str:
    """Bars of each series side by side per bin (shares in percent by default), the bins' names
    below them, slanted when they would not fit level."""
    values = [v for shares in series.values() for v in shares]
    widest_bin = max((len(b) for b in bins), default=1)
    probe = _Scale(values, False, 0, 1)
    left = round(max(len(number(t) + unit) for t in probe.ticks()) * CHAR_PX) + 22
    right, top = width - 8, 10
    slot = (right - left) / max(len(bins), 1)
    slanted = widest_bin * CHAR_PX > slot - 2
    height = 150 + (round(min(widest_bin, 18) * CHAR_PX * 0.7) if slanted else 14)
    bottom = height - (round(min(widest_bin, 18) * CHAR_PX * 0.7) + 8 if slanted else 18)
    scale = _Scale(values, False, top, bottom)
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" style="{SVG_STYLE}">'
    ]
    _y_axis(parts, scale, left, right, unit, y_label, height)
    bar = max(1.0, (slot - 4) / max(len(series), 1))
    legend = []
    for index, (name, shares) in enumerate(series.items()):
        colour = colour_of(name, index)
        for position, share in enumerate(shares):
            at = left + position * slot + 2 + index * bar
            parts.append(
                f'<rect class="bar" data-series="{escape(name)}" x="{at:.1f}" y="{scale(share)}" width="{bar - 1:.1f}" '
                f'height="{max(scale.bottom - scale(share), 0):.1f}" fill="{colour}">'
                f"<title>{escape(name)} {escape(bins[position])}: {number(share)}{unit}</title></rect>"
            )
        legend.append((name, colour, name, False))
    for position, name in enumerate(bins):
        shown = name if len(name) <= 18 else name[:17] + "…"
        middle = round(left + (position + 0.5) * slot, 1)
        if slanted:
            parts.append(
                f'<text class="tick x-tick" transform="translate({middle} {bottom + 10}) rotate(-35)" '
                f'text-anchor="end" {TICK_STYLE}>{escape(shown)}</text>'
            )
        else:
            parts.append(
                f'<text class="tick x-tick" x="{middle}" y="{bottom + 13}" text-anchor="middle" {TICK_STYLE}>'
                f"{escape(shown)}</text>"
            )
    parts.append("</svg>")
    return _figure(title, _legend(legend), "".join(parts), "bars")
