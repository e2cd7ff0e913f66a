"""Live quality with evidence, and estimated before the labels arrive (CBPE, DLE).

Two small scikit-learn models, converted to ONNX and scored by the served model's code, on
seeded two-feature data whose truth is drawn from a fixed P(y | x): the world does not change,
only where the traffic lands in it.  Their payload logs are written as a server writes them
(``RequestRecord`` lines with the served probabilities or values, ``FeedbackRecord`` lines), and
``conveyor monitor`` runs in process:

* a classifier whose traffic moves from far off its boundary (confident) to near it: CBPE's
  estimated accuracy drops, and the realised accuracy, from labels that came later, drops
  with it; each window's estimate is within ``CBPE_TOLERANCE`` of the realised accuracy;
* a regressor whose noise grows with ``x2``: traffic moving to large ``x2`` raises DLE's
  estimated MAE and RMSE as the realised ones rise, within ``DLE_MAE_TOLERANCE`` and
  ``DLE_RMSE_TOLERANCE`` (relative);
* three wrong labels in a window are "not enough labels", never a fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app as cli
from conveyor.serving.payload_record import FeedbackRecord, RequestRecord, record_time

CBPE_TOLERANCE = 0.06  # about three standard errors of a 400-item accuracy
DLE_MAE_TOLERANCE = 0.2  # relative: the trees learn a noisy target from 1,000 rows
DLE_RMSE_TOLERANCE = 0.3  # relative: squared errors are noisier still
REFERENCE = 1000
WINDOW = 400


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _frame(x1: np.ndarray, x2: np.ndarray) -> Any:
    import pandas as pd

    return pd.DataFrame({"x1": x1, "x2": x2})


def _convert(model: Any, folder: Path, name: str) -> Any:
    import joblib

    from conveyor.convert import convert_model
    from conveyor.serving.spec import resolve_model

    joblib.dump(model, folder / f"{name}.joblib")
    convert_model(folder / f"{name}.joblib", folder / name, name)
    return resolve_model(str(folder / name))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """P(yes | x) = sigmoid(2 x1); a logistic regression learns it; the reference spans x1 in [-4, 4]."""
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("cbpe")
    rng = np.random.default_rng(1)
    x1, x2 = rng.uniform(-4, 4, 1500), rng.normal(0, 1, 1500)
    y = np.where(rng.random(1500) < _sigmoid(2 * x1), "yes", "no")
    model = LogisticRegression().fit(_frame(x1, x2), y)
    reference = _frame(x1[:REFERENCE], x2[:REFERENCE]).assign(label=y[:REFERENCE])
    reference.to_csv(folder / "reference.csv", index=False)
    return _convert(model, folder, "churn"), folder


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """y = 3 x1 + noise of standard deviation 0.2 + |x2|; the reference spans x2 in [-3, 3]."""
    from sklearn.linear_model import LinearRegression

    folder = tmp_path_factory.mktemp("dle")
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(0, 1, 1500), rng.uniform(-3, 3, 1500)
    y = 3 * x1 + rng.normal(0, 1, 1500) * (0.2 + np.abs(x2))
    model = LinearRegression().fit(_frame(x1, x2), y)
    _frame(x1[:REFERENCE], x2[:REFERENCE]).assign(value=y[:REFERENCE]).to_csv(folder / "reference.csv", index=False)
    return _convert(model, folder, "load"), folder


def _write_log(resolved: Any, logs: Path, rows: list[dict[str, float]], truth: list[Any], per_request: int = 5) -> None:
    """The rows as a server logs them (its task code's answers), ``per_request`` a request, then the
    feedback of each request whose truth is not None."""
    from conveyor.serving.dataplane import ServingOptions
    from conveyor.serving.tasks import server_for

    task = server_for(resolved, ServingOptions())
    task.load()
    folder = logs / resolved.spec.name / resolved.spec.version
    folder.mkdir(parents=True)
    lines, feedback = [], []
    for start in range(0, len(rows), per_request):
        items, true = rows[start : start + per_request], truth[start : start + per_request]
        scores = np.asarray(task.score(items), dtype=np.float64)
        request_id = f"req-{start}"
        if task.classifier:
            labels = resolved.spec.labels
            outputs: list[Any] = [{"label": labels[i]} for i in scores.argmax(axis=1)]
            probabilities: list[list[float]] | None = scores.tolist()
        else:
            outputs, probabilities = [{"value": float(v)} for v in scores[:, 0]], None
        lines.append(
            RequestRecord(
                time=record_time(1_800_000_000 + start),
                request_id=request_id,
                model=resolved.spec.name,
                version=resolved.spec.version,
                route="/predict",
                latency_ms=1.0,
                inputs=items,
                outputs=outputs,
                probabilities=probabilities,
            ).json_line()
        )
        if true[0] is None:
            continue
        answers = {"labels": [str(t) for t in true]} if task.classifier else {"values": [float(t) for t in true]}
        feedback.append(FeedbackRecord(time=record_time(1_900_000_000), request_id=request_id, **answers).json_line())
    (folder / "payloads-20270101T000000Z-1-1.jsonl").write_bytes(b"".join(lines + feedback))


def _monitor(folder: Path, logs: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    model = str(next(p for p in folder.iterdir() if p.is_dir()))
    args = ["monitor", model, "--logs", str(logs), "--reference", str(folder / "reference.csv"), "--json", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_cbpe_estimated_accuracy_drops_as_traffic_nears_the_boundary_and_the_labels_agree(
    classifier: tuple[Any, Path], tmp_path: Path
) -> None:
    resolved, folder = classifier
    rng = np.random.default_rng(3)
    confident = rng.uniform(1.5, 4, WINDOW) * rng.choice([-1, 1], WINDOW)  # far from the boundary
    unsure = rng.uniform(-0.7, 0.7, WINDOW)  # near it: the model is less sure, and more often wrong
    x1, x2 = np.concatenate([confident, unsure]), rng.normal(0, 1, 2 * WINDOW)
    truth = np.where(rng.random(2 * WINDOW) < _sigmoid(2 * x1), "yes", "no").tolist()
    rows = [{"x1": float(a), "x2": float(b)} for a, b in zip(x1, x2, strict=True)]
    _write_log(resolved, tmp_path / "logs", rows, truth)

    code, report = _monitor(folder, tmp_path / "logs", "--window", str(WINDOW), "--min-accuracy", "0.7")

    assert report["reference"]["labelled"] == REFERENCE
    before, after = report["windows"]
    for window in (before, after):
        estimated, realised = window["estimated"], window["quality"]
        assert estimated["method"] == "CBPE" and estimated["items"] == WINDOW == realised["labelled"]
        print(
            f"window {window['index']}: CBPE {estimated['accuracy']:.3f} {estimated['accuracy_range']}, "
            f"realised {realised['accuracy']:.3f} {realised['accuracy_ci']} of {realised['labelled']}"
        )
        assert abs(estimated["accuracy"] - realised["accuracy"]) <= CBPE_TOLERANCE
        low, high = realised["accuracy_ci"]
        assert low <= realised["accuracy"] <= high and realised["enough_labels"]
        assert set(realised["classes"]) == {"no", "yes"} and realised["macro"]["f1_ci"] is not None
    assert after["estimated"]["accuracy"] <= before["estimated"]["accuracy"] - 0.15
    assert after["quality"]["accuracy"] <= before["quality"]["accuracy"] - 0.15
    assert code == 1 and after["quality_failed"] and not before["quality_failed"]  # 400 labels: enough to judge


def test_dle_estimated_error_rises_with_the_noisy_region_and_the_labels_agree(
    regressor: tuple[Any, Path], tmp_path: Path
) -> None:
    resolved, folder = regressor
    rng = np.random.default_rng(4)
    x1 = rng.normal(0, 1, 2 * WINDOW)
    x2 = np.concatenate([rng.uniform(-0.5, 0.5, WINDOW), rng.uniform(2, 3, WINDOW)])  # quiet, then noisy
    truth = (3 * x1 + rng.normal(0, 1, 2 * WINDOW) * (0.2 + np.abs(x2))).tolist()
    rows = [{"x1": float(a), "x2": float(b)} for a, b in zip(x1, x2, strict=True)]
    _write_log(resolved, tmp_path / "logs", rows, truth)

    _, report = _monitor(folder, tmp_path / "logs", "--window", str(WINDOW))

    before, after = report["windows"]
    for window in (before, after):
        estimated, realised = window["estimated"], window["quality"]
        print(
            f"window {window['index']}: DLE MAE {estimated['mae']:.3f} RMSE {estimated['rmse']:.3f}, "
            f"realised MAE {realised['mae']:.3f} {realised['mae_ci']} RMSE {realised['rmse']:.3f} {realised['rmse_ci']}"
        )
        assert estimated["method"] == "DLE" and estimated["items"] == WINDOW
        assert abs(estimated["mae"] - realised["mae"]) <= DLE_MAE_TOLERANCE * realised["mae"]
        assert abs(estimated["rmse"] - realised["rmse"]) <= DLE_RMSE_TOLERANCE * realised["rmse"]
        assert realised["mae_ci"][0] <= realised["mae"] <= realised["mae_ci"][1]
    assert after["estimated"]["mae"] >= 3 * before["estimated"]["mae"]
    assert after["quality"]["mae"] >= 3 * before["quality"]["mae"]


def test_three_wrong_labels_are_not_enough_to_fail_a_window(
    classifier: tuple[Any, Path], tmp_path: Path, wide_console: None
) -> None:
    resolved, folder = classifier
    rows = [{"x1": 3.0 + i / 100, "x2": 0.0} for i in range(100)]  # all answered "yes", and rightly
    truth = ["no"] * 3 + [None] * 97  # three labels came, all saying the model was wrong
    logs = tmp_path / "logs"
    _write_log(resolved, logs, rows, truth, per_request=1)

    code, report = _monitor(
        folder, logs, "--window", "100", "--min-items", "50", "--psi", "100", "--min-accuracy", "0.6"
    )
    (window,) = report["windows"]
    quality = window["quality"]
    assert quality["labelled"] == 3 and quality["accuracy"] == 0.0 and not quality["enough_labels"]
    assert quality["accuracy_ci"][1] > 0.5  # 0 of 3 says little: Wilson's upper bound is 56%
    assert code == 0 and not window["quality_failed"] and report["thresholds"]["min_labels"] == 30

    model, reference = str(folder / "churn"), str(folder / "reference.csv")
    args = ["--logs", str(logs), "--reference", reference, "--window", "100", "--min-items", "50", "--psi", "100"]
    table = CliRunner().invoke(cli, ["monitor", model, *args, "--min-accuracy", "0.6"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "not enough labels (3 of 30)" in table.stdout, table.stdout

    code, report = _monitor(
        folder,
        logs,
        "--window",
        "100",
        "--min-items",
        "50",
        "--psi",
        "100",
        "--min-accuracy",
        "0.6",
        "--min-labels",
        "3",
    )
    assert code == 1 and report["windows"][0]["quality_failed"]  # the bound is the user's to lower


def test_each_rate_has_its_wilson_interval_and_f1_a_seeded_bootstrap() -> None:
    from conveyor.monitoring.evidence import classifier_quality, wilson

    assert wilson(0, 3) == [0.0, 0.5615] and wilson(3, 3) == [0.4385, 1.0] and wilson(0, 0) is None
    served = ["a"] * 40 + ["b"] * 60
    truth = ["a"] * 30 + ["b"] * 10 + ["b"] * 50 + ["a"] * 10
    quality = classifier_quality(served, truth, ["a", "b"])
    a = quality["classes"]["a"]
    assert (a["true"], a["predicted"], a["correct"]) == (40, 40, 30) and a["precision"] == a["recall"] == 0.75
    assert a["precision_ci"] == wilson(30, 40) and a["f1_ci"][0] < 0.75 < a["f1_ci"][1]
    assert quality["accuracy"] == 0.8 and quality["macro"]["f1"] == round((0.75 + 50 / 60) / 2, 4)
    assert classifier_quality(served, truth, ["a", "b"]) == quality  # the same window, the same interval


def test_the_dashboard_headline_says_not_enough_labels_rather_than_a_rate_from_two() -> None:
    from conveyor.monitoring.drift import WindowDrift
    from conveyor.ui.traffic_pages import _charts, _headline

    two = {"labelled": 2, "accuracy": 1.0, "accuracy_ci": [0.3424, 1.0], "min_labels": 30, "enough_labels": False}
    window = WindowDrift(index=1, items=500, start="t0", end="t1", judged=True, columns=[], quality=two)
    assert _headline([window]) == "live quality in window 1: not enough labels (2 of 30)"
    assert not any("live 100" in str(chart) for chart in _charts([window]))
    enough = {**two, "labelled": 120, "accuracy": 0.8, "accuracy_ci": [0.72, 0.86], "enough_labels": True}
    window.quality = enough
    assert _headline([window]) == "live accuracy 80.0% (95%: 72.0% to 86.0%) on 120 labels in window 1"


def test_a_servers_live_accuracy_gauge_waits_for_enough_labels(classifier: tuple[Any, Path]) -> None:
    from prometheus_client import REGISTRY

    from conveyor.monitoring.live import live_drift_for
    from conveyor.monitoring.observe import Observer
    from conveyor.monitoring.profile import PROFILE_FILE, profile_of

    resolved, folder = classifier
    columns, quality = Observer(resolved).score_reference(folder / "reference.csv")
    profile_of(columns, "reference.csv", quality=quality).save(resolved.model_path.parent / PROFILE_FILE)
    live = live_drift_for(resolved, window=100)
    assert live is not None

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("conveyor_live_accuracy", {"model": "churn", "version": "1"})

    for i in range(30):
        request_id = f"live-{i}"
        live.observe(
            RequestRecord(
                time=record_time(),
                request_id=request_id,
                model="churn",
                version="1",
                route="/predict",
                latency_ms=1.0,
                inputs=[{"x1": 3.0, "x2": 0.0}],
                outputs=[{"label": "yes"}],
                probabilities=[[0.01, 0.99]] if resolved.spec.labels[1] == "yes" else [[0.99, 0.01]],
            )
        )
        live.observe(FeedbackRecord(time=record_time(), request_id=request_id, labels=["yes"]))
        if i == 1:
            assert gauge() is None  # two labels: no "live 100%"
    assert gauge() == 1.0  # thirty: enough
