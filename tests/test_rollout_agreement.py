"""Canary agreement from evidence: an honest 3-class retrain is promoted with default settings,
a shuffled-label one rolled back.

Two logistic regressions trained on different halves of the same data agree on 88% of the
reference sample: below the old fixed minimum (90%), so a fixed bar rolled such retrains back.
At ``rollout start`` the two versions' agreement is measured on the new version's reference
sample and the canary's mirrored agreement is judged against it (Wilson interval); a model
trained on shuffled labels agrees with stable about as often as chance does and still fails.
Real router, real ``conveyor serve`` backends from the registry, real mirrored traffic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conveyor.convert.options import ConvertOptions
from conveyor.registration import register_path
from conveyor.registry.config import open_local
from tests.registry_fixtures import run_cli
from tests.rollout_fixtures import Load, Proc, status_of

CANARY = ["--steps", "50", "--interval", "1s", "--no-contract", "--min-requests", "10", "--min-compared", "20"]
CANARY += ["--p99-floor-ms", "2000", "--mirror-percent", "100"]
CANARY += ["--max-inconclusive", "60"]  # a busy machine's thin windows grow rather than pause the rollout


def three_class_models(folder: Path) -> tuple[Path, Path, Path, Path, list[dict]]:
    """(stable, honest retrain, shuffled-label retrain, reference CSV, the reference rows)."""
    import joblib
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(
        n_samples=900, n_features=5, n_informative=4, n_redundant=0, n_classes=3, class_sep=0.8, random_state=0
    )
    frame = pd.DataFrame(x.round(4), columns=[f"f{i}" for i in range(5)])
    names = np.array(["ham", "eggs", "spam"])[y]
    train, labels, reference = frame.head(600), names[:600], frame.tail(300)
    first = np.random.default_rng(1).choice(600, 300, replace=False)
    second = np.random.default_rng(11).choice(600, 300, replace=False)
    paths = []
    for name, rows, answers in (
        ("stable", first, labels[first]),
        ("retrain", second, labels[second]),
        ("shuffled", second, np.random.default_rng(1).permutation(labels[second])),
    ):
        model = LogisticRegression(max_iter=500).fit(train.iloc[rows], answers)
        joblib.dump(model, folder / f"{name}.joblib")
        paths.append(folder / f"{name}.joblib")
    reference.to_csv(folder / "reference.csv", index=False)
    rows = json.loads(reference.to_json(orient="records"))
    return paths[0], paths[1], paths[2], folder / "reference.csv", rows


def test_an_honest_multiclass_retrain_is_promoted_and_a_shuffled_one_rolled_back(
    router: Proc, rollout_home: Path, tmp_path: Path
) -> None:
    stable, retrain, shuffled, reference, rows = three_class_models(tmp_path)
    registry = open_local()

    def register(path: Path, **extra: object) -> None:
        register_path(registry, path, "triage", ConvertOptions(), reference=reference, report=lambda _: None, **extra)

    register(stable, aliases=["production"])
    run_cli("rollout", "start", "triage@production", "--service", "svc", check=True)

    register(retrain)
    with Load(router.url, clients=3, rows=rows) as load:
        promoted = run_cli("rollout", "start", "triage:2", "--service", "svc", *CANARY)
    status = status_of(rollout_home)
    assert promoted.returncode == 0 and status["phase"] == "succeeded", promoted.stdout + promoted.stderr
    expected = status["expected_agreement"]
    assert 0.8 < expected["share"] < 0.9 and expected["items"] == 300  # the old fixed 0.9 would roll it back
    said = f"agreement: expected {expected['share']:.1%}, measured at start on 300 items of triage:2 "
    assert said in promoted.stdout  # rollout start's one line on what the canary is held to
    judged = [run for run in status["analysis"] if "agreement" in run["measurements"]]
    assert judged and all(run["measurements"]["expected_agreement"] == expected["share"] for run in judged)
    assert load.errors == 0, load.seen
    shown = run_cli("rollout", "status", "svc", check=True).stdout
    assert f"expected_agreement={expected['share']}" in shown, shown

    register(shuffled)
    with Load(router.url, clients=3, rows=rows):
        refused = run_cli("rollout", "start", "triage:3", "--service", "svc", *CANARY)
    status = status_of(rollout_home)
    assert refused.returncode == 1 and status["phase"] == "aborted", refused.stdout
    expected = status["expected_agreement"]
    assert expected["share"] < 0.6  # what it "expects" is little better than chance: the floor above chance holds
    failed = next(run for run in status["analysis"] if run["outcome"] == "failed")["measurements"]
    assert failed["agreement_bar"] == round(expected["chance"] + 0.5 * (1 - expected["chance"]), 4)
    assert failed["agreement_interval"][1] < failed["agreement_bar"]
    assert "below the" in status["abort_reason"] and "reference items" in status["abort_reason"], status["abort_reason"]
    assert registry.resolve("triage@production").version == 2
