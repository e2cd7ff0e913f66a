"""``conveyor monitor --html``: one self-contained page (no script, no network) a person can open
or a CI job can keep as an artifact.

What a person watching a model asks, in the order they ask it: did anything drift, and where
(PSI per column over the windows against the threshold); is it still right (live quality per
window beside its label-free estimate, each with its interval); what moved (each column's
reference distribution against the latest judged window's, bin by bin, with its statistics).
Every number is rounded for reading; ``--json`` keeps them whole.  The charts are the
dashboard's own (``monitoring/window_charts.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.atomic import write_atomic
from conveyor.charts import number
from conveyor.extras import needs
from conveyor.monitoring import window_charts

with needs("monitor", "the drift report (conveyor monitor)"):
    from jinja2 import Environment, select_autoescape
    from markupsafe import Markup

MAX_COLUMNS_CHARTED = 8  # lines on the PSI chart: the columns that moved most; every column has its own section

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ r.model }}:{{ r.version }}: traffic against its reference</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #1f2937; max-width: 1200px }
h2 { margin-top: 1.6em } h3 { margin: 0 0 4px; font-size: 15px }
table { border-collapse: collapse; margin: 6px 0 }
td, th { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left }
th { font-size: 12px; color: #374151; background: #f3f4f6 }
td.num { text-align: right; font-variant-numeric: tabular-nums } td.time { white-space: nowrap }
.drift { color: #b91c1c; font-weight: 600 } .dim { color: #6b7280 }
.column { border-top: 1px solid #e5e7eb; padding: 12px 0 } .pair { display: flex; flex-wrap: wrap; gap: 16px }
</style></head><body>
<h1>{{ r.model }}:{{ r.version }}: served traffic against its reference</h1>
<p>Reference: {{ r.profile.source }} ({{ r.profile.items }} items). {{ r.records }} logged requests in {{ r.files }}
files, {{ r.windows|length }} windows. A column drifts at PSI &ge; {{ num(r.thresholds.psi) }} when its test's
p-value (Benjamini-Hochberg adjusted across the window's columns) is below {{ num(r.thresholds.alpha) }};
a window of fewer than {{ r.thresholds.min_items }} items is not judged, and live quality on fewer than
{{ r.thresholds.min_labels }} labels is "not enough labels".</p>
<p id="verdict">Latest judged window:
{% if not r.latest %}<span class="dim">none judged yet</span>
{% elif r.latest_drifted %}<span class="drift">window {{ r.latest.index }}: {{ verdict(r.latest) }}</span>
{% else %}window {{ r.latest.index }}: no drift{% endif %}</p>
{% if self_check %}<p class="dim">{{ self_check }}</p>{% endif %}
{% for note in r.notes %}<p class="dim">note: {{ note }}</p>{% endfor %}

<h2>Quality over time</h2>
{% if quality_chart %}<section id="quality">{{ quality_chart }}</section>
{% else %}<p class="dim">no window has labels (POST /feedback) or an estimate (a reference with labels) yet</p>
{% endif %}

<h2>Drift over time</h2>
{% if psi_chart %}<section id="psi">{{ psi_chart }}</section>
{% if charted_note %}<p class="dim">{{ charted_note }}</p>{% endif %}
{% else %}<p class="dim">no window has enough items to judge yet</p>{% endif %}

<h2>Windows</h2>
<table id="windows"><tr><th>window</th><th>items</th><th>from (UTC)</th><th>to (UTC)</th><th>drift share</th>
<th>drifted</th>
<th>live quality</th><th>estimated</th></tr>
{% for w in r.windows %}<tr><td class="num">{{ w.index }}</td><td class="num">{{ w.items }}</td>
<td class="time">{{ when(w.start) }}</td><td class="time">{{ when(w.end) }}</td>
<td class="num">{{ '' if w.drift_share is none else '%d/%d'|format(w.drifted|length, w.columns|length) }}</td>
<td class="{{ 'drift' if w.drifted else '' }}">{{ verdict(w) }}</td>
<td class="{{ 'drift' if w.quality_failed else '' }}">{{ quality(w.quality) }}</td>
<td>{{ estimated(w.estimated) }}</td></tr>
{% endfor %}</table>

{% if r.latest %}
<h2>Columns in window {{ r.latest.index }} ({{ r.latest.items }} items, {{ when(r.latest.start) }} to
{{ when(r.latest.end) }} UTC)</h2>
{% for c in columns %}
<section class="column" data-column="{{ c.drift.name }}">
<h3>{{ c.drift.name }} <span class="dim">({{ c.drift.side }}, {{ c.drift.kind }})</span>
{% if c.drift.drifted %}<span class="drift">drifted</span>{% endif %}</h3>
<table class="stats"><tr>{% for k, _ in c.stats %}<th>{{ k }}</th>{% endfor %}</tr>
<tr>{% for _, v in c.stats %}<td>{{ v }}</td>{% endfor %}</tr></table>
<div class="pair">{{ c.histogram or '' }}{{ c.trend or '' }}</div>
</section>
{% endfor %}
{% endif %}
</body></html>
"""


def write_html(result: Any, path: Path) -> Path:
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(TEMPLATE).render(**report_view(result))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, html)
    return path


def report_view(result: Any) -> dict[str, Any]:
    """The template's context: the result, its charts (as markup) and the helpers that round."""
    charted = window_charts.peak_columns(result.windows, MAX_COLUMNS_CHARTED)
    every = window_charts.peak_columns(result.windows, 10**6)
    psi = window_charts.psi_chart(result.windows, result.thresholds, charted)
    reference_quality = result.profile.quality.realised if result.profile.quality else None
    quality = window_charts.quality_chart(result.windows, result.thresholds, reference=reference_quality)
    latest = result.latest
    return {
        "r": result,
        "num": number,
        "verdict": verdict,
        "when": when,
        "quality": quality_text,
        "estimated": estimated_text,
        "psi_chart": Markup(psi) if psi else None,
        "quality_chart": Markup(quality) if quality else None,
        "charted_note": (
            f"the {len(charted)} columns whose PSI peaked highest of {len(every)}; every column has its section below"
            if len(every) > len(charted)
            else ""
        ),
        "self_check": _self_check(result.profile.self_check),
        "columns": [_column(result, latest.index, c) for c in latest.columns] if latest else [],
    }


def when(time: str) -> str:
    """A record's time (ISO 8601 in UTC with milliseconds) to the second: ``2027-01-15 08:03:15``."""
    return time[:19].replace("T", " ")


def verdict(window: Any) -> str:
    if not window.judged:
        return "too few items to judge"
    return ", ".join(window.drifted) if window.drifted else "none"


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def quality_text(quality: dict[str, Any] | None) -> str:
    """A window's realised quality, with its 95% interval and the labels behind it."""
    if quality is None:
        return "-"
    labelled = quality["labelled"]
    if not quality.get("enough_labels", True):
        return f"not enough labels ({labelled} of {quality.get('min_labels', '?')})"
    if "accuracy" in quality:
        ci = quality.get("accuracy_ci")
        interval = f" [{_percent(ci[0])}, {_percent(ci[1])}]" if ci else ""
        return f"accuracy {_percent(quality['accuracy'])}{interval} of {labelled}"
    ci = quality.get("mae_ci")
    interval = f" [{number(ci[0])}, {number(ci[1])}]" if ci else ""
    return f"MAE {number(quality['mae'])}{interval}, RMSE {number(quality.get('rmse'))} of {labelled}"


def estimated_text(estimated: dict[str, Any] | None) -> str:
    """A window's label-free estimate (CBPE or DLE)."""
    if estimated is None:
        return "-"
    if "accuracy" in estimated:
        low, high = estimated["accuracy_range"]
        return f"{estimated['method']} accuracy {_percent(estimated['accuracy'])} [{_percent(low)}, {_percent(high)}]"
    return f"{estimated['method']} MAE {number(estimated['mae'])}, RMSE {number(estimated['rmse'])}"


def summary(values: dict[str, Any]) -> str:
    """A column's summary (``{"p50": 87.53999999999999}``) as ``p50 87.5``."""
    return ", ".join(f"{k} {number(v) if isinstance(v, float) else v}" for k, v in values.items())


def _column(result: Any, window: int, drift: Any) -> dict[str, Any]:
    reference = result.profile.columns.get(drift.name)
    histogram = window_charts.histogram(reference, drift, window) if reference is not None else None
    trend = window_charts.column_psi_chart(result.windows, result.thresholds, drift.name)
    stats = [
        ("PSI" if drift.psi is not None else "MMD²", number(drift.psi if drift.psi is not None else drift.mmd)),
        ("p", number(drift.pvalue, 2)),
        ("p (BH)", number(drift.adjusted_pvalue, 2)),
    ]
    if drift.ks_statistic is not None:
        stats.append(("KS statistic", number(drift.ks_statistic)))
    if drift.js_distance is not None:
        stats.append(("JS distance", number(drift.js_distance)))
    stats += [("reference", summary(drift.reference)), (f"window {window}", summary(drift.window))]
    stats.append(("drift", "yes" if drift.drifted else "no"))
    return {
        "drift": drift,
        "stats": stats,
        "histogram": Markup(histogram) if histogram else None,
        "trend": Markup(trend) if trend else None,
    }


def _self_check(check: Any) -> str:
    if check is None:
        return ""
    return (
        f"Reference self-check: {check.false_alarms} of {check.splits} splits of the reference into halves "
        f"({check.half} items each) raised drift: a false-alarm rate of {check.rate:.0%}."
    )
