"""Line charts drawn on the server as SVG: no chart library, nothing for the browser to compute.

A chart is a few series of (time, value) points sharing one time axis; gaps (``None``) break a
line rather than drawing it through zero, since "no traffic" is not "no latency".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from conveyor.extras import needs

with needs("ui", "the dashboard (conveyor ui)"):
    from markupsafe import Markup


COLOURS = {"stable": "#2563eb", "canary": "#ea580c"}
FALLBACK = ("#16a34a", "#9333ea", "#db2777", "#0891b2", "#65a30d", "#b45309")
LEGEND_STEP = 150  # horizontal room per legend entry
TITLE_CHAR_PX = 6.6  # about a character of the 12 px bold title


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float | None]]],
    unit: str = "",
    width: int = 520,
    height: int = 150,
    x_range: tuple[str, str] | None = None,
) -> Markup:
    """One SVG: a polyline per series, the y axis from 0 to a round maximum, the last value in the legend.

    The x axis is seconds up to now unless ``x_range`` names its two ends (``window 1``, ``window 9``)."""
    left, right, top, bottom = 44, 8, 22, 18
    legend: list[tuple[int, int]] = []  # each series' legend position: rows below the title when many
    legend_x, legend_y = left + max(150, round(len(title) * TITLE_CHAR_PX) + 16), 14  # after the title
    for _ in series:
        if legend_x + LEGEND_STEP > width + LEGEND_STEP // 2 and legend_x > left:
            legend_x, legend_y = left, legend_y + 12
        legend.append((legend_x, legend_y))
        legend_x += LEGEND_STEP
    top, height = top + legend_y - 14, height + legend_y - 14
    inner_w, inner_h = width - left - right, height - top - bottom
    times = [t for points in series.values() for t, v in points if v is not None]
    values = [v for points in series.values() for _, v in points if v is not None]
    top_value = _nice_max(max(values) if values else 0.0)
    start, end = (min(times), max(times)) if times else (0.0, 1.0)
    span = (end - start) or 1.0

    def x(t: float) -> float:
        return left + (t - start) / span * inner_w

    def y(v: float) -> float:
        return top + inner_h - (v / top_value) * inner_h

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + inner_h}" x2="{width - right}" y2="{top + inner_h}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + inner_h}" class="axis"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="tick">{top_value:g}{escape(unit)}</text>',
        f'<text x="{left - 4}" y="{top + inner_h}" text-anchor="end" class="tick">0</text>',
    ]
    if times:
        left_tick, right_tick = x_range or (f"-{span:.0f}s", "now")
        parts.append(
            f'<text x="{width - right}" y="{height - 4}" text-anchor="end" class="tick">{escape(right_tick)}</text>'
        )
        parts.append(f'<text x="{left}" y="{height - 4}" class="tick">{escape(left_tick)}</text>')
    for index, (name, points) in enumerate(series.items()):
        colour = COLOURS.get(name, FALLBACK[index % len(FALLBACK)])
        runs: list[list[str]] = [[]]
        for t, v in points:
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(t):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif run:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{" ".join(run)}"/>')
        last = next((v for _, v in reversed(points) if v is not None), None)
        label = f"{name} {last:.3g}{unit}" if last is not None else f"{name} -"
        at_x, at_y = legend[index]
        parts.append(
            f'<text x="{at_x}" y="{at_y}" fill="{colour}" class="legend" data-series="{escape(name)}">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
