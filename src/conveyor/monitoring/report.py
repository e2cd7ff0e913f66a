"""``conveyor monitor --html``: one self-contained page (no script, no network) a person can open
or a CI job can keep as an artifact: each column's PSI over the windows as a small chart against
its threshold, and the latest window's table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.atomic import write_atomic
from conveyor.extras import needs

with needs("monitor", "the drift report (conveyor monitor)"):
    from jinja2 import Environment, select_autoescape

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ r.model }}:{{ r.version }} drift</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222 }
table { border-collapse: collapse } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left }
.drift { color: #b00020; font-weight: 600 } .chart { margin: 0 1em 1em 0; display: inline-block }
</style></head><body>
<h1>{{ r.model }}:{{ r.version }}: served traffic against its reference</h1>
<p>Reference: {{ r.profile.source }} ({{ r.profile.items }} items). {{ r.records }} logged requests,
{{ r.windows|length }} windows. A column drifts at PSI &ge; {{ r.thresholds.psi }}
when its test's p-value is below {{ r.thresholds.alpha }}.
Latest judged window: <span class="{{ 'drift' if r.latest_drifted else '' }}">
{{ ', '.join(r.latest.drifted) if r.latest and r.latest.drifted else ('no drift' if r.latest else 'none judged') }}
</span></p>
<h2>PSI per window</h2>
{% for name, points in series.items() %}
<figure class="chart"><figcaption>{{ name }}</figcaption>
<svg width="{{ width }}" height="{{ height }}" role="img" aria-label="PSI of {{ name }} per window">
<line x1="0" x2="{{ width }}" y1="{{ y(r.thresholds.psi) }}" y2="{{ y(r.thresholds.psi) }}"
 stroke="#b00020" stroke-dasharray="4 3"/>
{% for i, value in points %}
<rect x="{{ i * bar }}" y="{{ y(value) }}" width="{{ bar - 2 }}" height="{{ height - y(value) }}"
 fill="{{ '#b00020' if value >= r.thresholds.psi else '#3367d6' }}">
<title>window {{ i + 1 }}: {{ value }}</title></rect>
{% endfor %}</svg></figure>
{% endfor %}
{% if r.latest %}
<h2>Window {{ r.latest.index }} ({{ r.latest.items }} items, {{ r.latest.start }} to {{ r.latest.end }})</h2>
<table><tr><th>column</th><th>side</th><th>PSI</th><th>p</th><th>KS statistic</th><th>JS distance</th>
<th>reference</th><th>window</th><th>drift</th></tr>
{% for c in r.latest.columns %}
<tr><td>{{ c.name }}</td><td>{{ c.side }}</td><td>{{ '' if c.psi is none else '%.3f'|format(c.psi) }}</td>
<td>{{ '%.2g'|format(c.pvalue) }}</td>
<td>{{ '' if c.ks_statistic is none else '%.3f'|format(c.ks_statistic) }}</td>
<td>{{ '' if c.js_distance is none else '%.3f'|format(c.js_distance) }}</td>
<td>{{ c.reference }}</td><td>{{ c.window }}</td>
<td class="{{ 'drift' if c.drifted else '' }}">{{ 'yes' if c.drifted else 'no' }}</td></tr>
{% endfor %}</table>
{% endif %}
</body></html>
"""


def write_html(result: Any, path: Path) -> Path:
    series: dict[str, list[tuple[int, float]]] = {}
    for i, window in enumerate(result.windows):
        for column in window.columns:
            if column.psi is not None:
                series.setdefault(column.name, []).append((i, column.psi))
    width, height, bar = 320, 80, max(4, 320 // max(len(result.windows), 1))
    top = max([result.thresholds.psi * 2] + [v for points in series.values() for _, v in points])

    def y(value: float) -> float:
        return round(height - min(value, top) / top * (height - 4), 1)

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(TEMPLATE).render(r=result, series=series, width=width, height=height, bar=bar, y=y)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, html)
    return path
