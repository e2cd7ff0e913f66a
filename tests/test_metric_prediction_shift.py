"""The prediction-shift analysis metric: canary and stable answer each label about as often."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.rollout.analysis.metric import AnalysisWindow
from conveyor.rollout.analysis.metrics.prediction_shift import largest_shift
from conveyor.rollout.controller import CANARY, STABLE
from conveyor.router.stats import RouterStats
from tests.registry_fixtures import run_cli
from tests.rollout_fakes import INTERVAL, canary_window, make_rig
from tests.test_rollout_export import validate_argo


def _window(canary_positive: int, stable_positive: int, total: int = 100, **limits: float) -> AnalysisWindow:
    stats = RouterStats()
    before = stats.snapshot()
    for backend, version, positive in ((CANARY, "v2", canary_positive), (STABLE, "v1", stable_positive)):
        traffic = stats.of(backend, version)
        for index in range(total):
            traffic.observe("200", 0.004, ["positive=true" if index < positive else "positive=false"])
    return canary_window(stats, before, **{"max_prediction_shift": 0.1, **limits})


def _measure(window: AnalysisWindow):  # type: ignore[no-untyped-def]
    from conveyor.rollout.analysis.run import analyse

    return analyse(window)


def test_the_largest_shift_over_the_labels_is_measured() -> None:
    assert largest_shift({"a": 0.7, "b": 0.2, "c": 0.1}, {"a": 0.5, "b": 0.3, "c": 0.2}) == ("a", pytest.approx(0.2))
    assert largest_shift({"a": 1.0}, {"b": 1.0})[1] == 1.0  # a label only one side answers


def test_a_canary_answering_positive_far_more_often_fails() -> None:
    verdict = _measure(_window(canary_positive=80, stable_positive=50))
    assert verdict.outcome == "failed"
    assert verdict.measurements["prediction_shift"] == 0.3
    assert any("answers positive=true 80% of the time, stable 50%" in r for r in verdict.reasons)


def test_a_small_shift_passes_and_the_metric_is_off_by_default() -> None:
    assert _measure(_window(canary_positive=55, stable_positive=50)).outcome == "successful"
    off = _measure(_window(canary_positive=100, stable_positive=0, max_prediction_shift=None))  # type: ignore[arg-type]
    assert off.outcome == "successful" and "prediction_shift" not in off.measurements


def test_too_few_answers_on_either_side_are_inconclusive() -> None:
    verdict = _measure(_window(canary_positive=5, stable_positive=5, total=8, min_requests=20))
    assert verdict.outcome == "inconclusive"
    assert any("needs 20 labelled answers from each version" in r for r in verdict.reasons)


def test_the_controller_rolls_back_a_shifted_canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, monkeypatch, mirror_percent=0.0, max_prediction_shift=0.15)

    def shifted() -> None:
        rig.router.serve(STABLE, "v1", 20, label="positive=true")
        rig.router.serve(STABLE, "v1", 20, label="positive=false")
        rig.router.serve(CANARY, "v2", 36, label="positive=true")
        rig.router.serve(CANARY, "v2", 4, label="positive=false")
        rig.clock.sleep(INTERVAL + 0.1)

    final = rig.until(lambda s: not s.active, shifted)
    assert final.phase == "aborted" and "a shift of 40%" in (final.abort_reason or "")
    assert rig.router.weights() == {STABLE: 100.0}


def test_its_flag_and_its_argo_analysis_template_metric() -> None:
    help_text = run_cli("rollout", "start", "--help").stdout
    assert "--max-prediction-shift" in help_text
    result = run_cli(
        "rollout", "export", "--image", "registry.example/sentiment:2", "--name", "sentiment",
        "--max-prediction-shift", "0.1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    template = next(doc for doc in docs if doc["kind"] == "AnalysisTemplate")
    metric = next(m for m in template["spec"]["metrics"] if m["name"] == "prediction-shift")
    query = metric["provider"]["prometheus"]["query"]
    assert "conveyor_predictions_total" in query and "{{args.canary-hash}}" in query and "{{args.stable-hash}}" in query
    assert metric["failureCondition"] == "len(result) > 0 && result[0] > 0.1"  # NaN (too few answers): inconclusive
    assert {"name": "stable-hash"} in template["spec"]["args"]
    argo = [doc for doc in docs if doc["apiVersion"].startswith("argoproj.io")]
    assert validate_argo(argo) == [{"kind": "AnalysisTemplate", "ok": True}, {"kind": "Rollout", "ok": True}]
    without = run_cli("rollout", "export", "--image", "registry.example/sentiment:2", "--name", "sentiment")
    assert "prediction-shift" not in without.stdout
    refused = run_cli("rollout", "start", "m:2", "--max-prediction-shift", "2")
    assert refused.returncode == 2 and "--max-prediction-shift" in refused.stderr
