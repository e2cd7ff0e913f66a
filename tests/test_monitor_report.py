"""Reports people read: ``conveyor monitor --html`` and the dashboard's traffic charts, in Chromium.

One small classifier (a logistic regression on ``x1``, ``x2``, P(yes | x) = sigmoid(2 x1)), its
payload log written as a server writes it, four windows of 200: traffic like the reference with
labels, like it again with only five labels, near the decision boundary with labels (the live
accuracy and its CBPE estimate fall), and ``x1`` moved wholesale to [3.5, 4] (a PSI of several
units).  The report must show rounded numbers (no ``87.53999999999999``), a histogram per column,
live and estimated quality over the windows; its charts and the dashboard's must draw the drift
threshold where a reader expects it, an axis that reaches the largest PSI (not capped at 1), and
legends whose entries do not overlap, measured as laid out by the browser.  ``make screenshots``
takes the pictures in docs/monitoring.md on the way (into docs/images).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_dashboard_browser import CHROMIUM, FLAGS
from tests.test_monitor_quality import _convert, _frame, _sigmoid, _write_log

SHOTS = os.environ.get("CONVEYOR_SCREENSHOTS")  # make screenshots: docs/images; else none taken (they cost seconds)
WINDOW = 200
STYLE = Path(__file__).parents[1] / "src" / "conveyor" / "ui" / "static" / "style.css"


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Any]:
    """The log's pass: ``monitor --json`` as a dict, the ``--html`` report's path, and the
    ``MonitorResult`` the dashboard draws."""
    from sklearn.linear_model import LogisticRegression

    from conveyor.monitoring.report import write_html
    from conveyor.monitoring.run import monitor_log
    from conveyor.monitoring.thresholds import Thresholds

    folder = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(5)
    x1, x2 = rng.uniform(-4, 4, 1200), rng.normal(0, 1, 1200)
    y = np.where(rng.random(1200) < _sigmoid(2 * x1), "yes", "no")
    _frame(x1[:800], x2[:800]).assign(label=y[:800]).to_csv(folder / "reference.csv", index=False)
    resolved = _convert(LogisticRegression().fit(_frame(x1, x2), y), folder, "churn")

    like = rng.uniform(-4, 4, 2 * WINDOW)
    unsure = rng.uniform(-0.6, 0.6, WINDOW)
    moved = rng.uniform(3.5, 4, WINDOW)
    traffic = np.concatenate([like, unsure, moved])
    truth: list[Any] = np.where(rng.random(len(traffic)) < _sigmoid(2 * traffic), "yes", "no").tolist()
    truth[WINDOW + 5 : 2 * WINDOW] = [None] * (WINDOW - 5)  # window 2: five labels only
    rows = [{"x1": float(a), "x2": float(b)} for a, b in zip(traffic, rng.normal(0, 1, len(traffic)), strict=True)]
    _write_log(resolved, folder / "logs", rows, truth)

    # one pass, written as `conveyor monitor --html report.html --json --min-accuracy 0.75` writes it
    here = Path.cwd()
    os.chdir(folder)  # the reference named as a user names it: the report says where it came from
    try:
        result = monitor_log(resolved, "logs", Path("reference.csv"), WINDOW, Thresholds(min_accuracy=0.75))
    finally:
        os.chdir(here)
    assert result.latest_drifted  # the command would exit 1
    return json.loads(json.dumps(result.as_dict())), write_html(result, folder / "report.html"), result


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser.new_page(viewport={"width": 900, "height": 900})
        browser.close()


def test_the_report_rounds_its_numbers_and_draws_each_columns_histogram_and_quality_over_time(
    monitored: tuple[dict[str, Any], Path, Any],
) -> None:
    report, path, _ = monitored
    html = path.read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"\d\.\d{5,}", text), re.findall(r"\S*\d\.\d{5,}\S*", text)[:5]  # no 87.53999999999999
    assert "{'" not in text and "{&#39;" not in html  # no raw dicts
    x1 = next(c for c in report["windows"][-1]["columns"] if c["name"] == "feature.x1")
    assert f"p50 {x1['window']['p50']:.3g}" in text  # the window's median, rounded

    latest = report["windows"][-1]
    assert latest["drifted"] and "feature.x1" in latest["drifted"]
    sections = re.findall(r'<section class="column" data-column="([^"]+)">(.*?)</section>', html, re.S)
    assert {name for name, _ in sections} == {c["name"] for c in latest["columns"]}
    for name, body in sections:  # a histogram per column: reference against the window, bin by bin
        assert 'data-chart="bars"' in body, name
        assert 'data-series="reference"' in body and f'data-series="window {latest["index"]}"' in body, name

    quality = html.split('<section id="quality">')[1].split("</section>")[0]
    assert 'data-series="live"' in quality and 'data-series="estimated"' in quality
    assert 'class="threshold" data-value="75"' in quality  # --min-accuracy 0.75, in percent
    live = [w["quality"] for w in report["windows"]]
    assert live[1]["labelled"] == 5 and not live[1]["enough_labels"]
    assert "not enough labels (5 of 30)" in text
    assert report["windows"][2]["estimated"]["accuracy"] < report["windows"][0]["estimated"]["accuracy"] - 0.1
    estimated = report["windows"][2]["estimated"]["accuracy"]
    assert f"CBPE accuracy {estimated * 100:.1f}%" in text


def _box(locator: Any) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None
    return box


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and (b["y"] < a["y"] + a["height"])
    )


def _check_psi_chart(chart: Any, largest: float) -> None:
    """The threshold line between the 0.1 and 1 ticks (a log axis), the axis's top tick at or above
    the largest PSI and that column's line above the 1 tick, and no two legend entries overlapping."""
    ticks = {t.text_content(): _box(t)["y"] + _box(t)["height"] / 2 for t in chart.locator(".y-tick").all()}
    threshold = _box(chart.locator("line.threshold"))
    assert chart.locator("line.threshold").get_attribute("data-value") == "0.2"
    assert ticks["1"] < threshold["y"] < ticks["0.1"]  # 0.2 sits between them, nearer 0.1
    top = max(ticks, key=lambda label: -ticks[label])
    assert float(top) >= largest > 1, (top, largest)  # uncapped: 3.6 is not drawn as 1
    peak = _box(chart.locator('polyline[data-series="feature.x1"]'))
    assert peak["y"] < ticks["1"]
    entries = [_box(e) for e in chart.locator(".legend-entry").all()]
    title = _box(chart.locator(".chart-title"))
    svg = _box(chart.locator("svg"))
    assert len(entries) >= 4
    for i, entry in enumerate(entries):
        assert not _overlap(entry, title) and not _overlap(entry, svg)
        assert all(not _overlap(entry, other) for other in entries[i + 1 :]), entries


def test_the_reports_charts_have_a_threshold_an_uncapped_log_axis_and_legends_apart(
    monitored: tuple[dict[str, Any], Path, Any], page: Any
) -> None:
    report, path, _ = monitored
    largest = max(c["psi"] for w in report["windows"] for c in w["columns"] if c["psi"] is not None)
    page.set_viewport_size({"width": 900, "height": 900})
    page.goto(path.as_uri())
    _check_psi_chart(page.locator("#psi figure"), largest)
    for chart in page.locator("figure.chart").all():  # every chart: axes with ticks, a labelled axis
        assert chart.locator("line.axis").count() == 2 and chart.locator(".y-tick").count() >= 2
    bars = page.locator('section[data-column="feature.x1"] figure[data-chart="bars"]')
    assert bars.locator('rect[data-series="reference"]').count() == len(bars.locator(".x-tick").all()) >= 5
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "monitor-report.png"), full_page=True)


def test_the_dashboards_traffic_charts_draw_the_threshold_uncapped_with_legends_that_wrap_apart(
    monitored: tuple[dict[str, Any], Path, Any], page: Any
) -> None:
    from conveyor.ui.app import make_templates
    from conveyor.ui.traffic_pages import shown_panel

    report, _, result = monitored
    largest = max(c["psi"] for w in report["windows"] for c in w["columns"] if c["psi"] is not None)
    panel = shown_panel("churn:1", result, WINDOW)
    html = make_templates().get_template("_traffic.html").render(panel=panel, show_ref=True)
    page.set_viewport_size({"width": 430, "height": 900})  # a narrow window: the legend must wrap, not overlap
    page.set_content(f"<!doctype html><html><head><style>{STYLE.read_text()}</style></head><body><main>{html}</main>")
    psi, quality = page.locator("figure.chart").all()
    _check_psi_chart(psi, largest)
    rows = {round(_box(e)["y"]) for e in psi.locator(".legend-entry").all()}
    assert len(rows) > 1  # wrapped onto rows of their own
    assert quality.locator("line.threshold").get_attribute("data-value") == "75"
    if SHOTS:
        page.set_viewport_size({"width": 1180, "height": 900})
        page.locator("section.traffic").screenshot(path=str(Path(SHOTS) / "dashboard-traffic.png"))


def test_numbers_are_rounded_for_reading_and_bins_named_by_their_rounded_edges() -> None:
    from conveyor.charts import number
    from conveyor.monitoring.window_charts import bin_labels

    assert [number(v) for v in (87.53999999999999, 0.06971234, 8.2834, 1200.0, 0.0, None)] == [
        "87.5",
        "0.0697",
        "8.28",
        "1200",
        "0",
        "-",
    ]
    assert bin_labels([1.00004, 1.00006, 2.5]) == ["≤ 1", "1 to 1.0001", "1.0001 to 2.5", "> 2.5"]  # just distinct


def test_an_embedding_column_is_charted_by_its_mmd_without_a_psi_threshold() -> None:
    from conveyor.monitoring.drift import ColumnDrift, WindowDrift
    from conveyor.monitoring.thresholds import Thresholds
    from conveyor.monitoring.window_charts import column_psi_chart

    def window(index: int, mmd: float) -> WindowDrift:
        column = ColumnDrift("text.embedding", "input", "embedding", 200, None, mmd > 0.01, 0.001, mmd=mmd)
        return WindowDrift(index=index, items=200, start="t", end="t", judged=True, columns=[column])

    chart = column_psi_chart([window(1, 0.0012), window(2, 0.0421)], Thresholds(), "text.embedding")
    assert chart is not None and "MMD²" in chart and 'class="threshold"' not in chart
    assert "text.embedding 0.0421" in chart  # the legend's last value, rounded
