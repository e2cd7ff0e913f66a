"""Canary agreement without ``--reference`` (issue 45): the gate's ``--sample`` is the version's
reference sample for agreement (never its drift profile), stable's sample is used where the new
version keeps none, and ``rollout start`` says in one line what the canary is held to and why.

Unit level: registration and the offline measurement in process, no router."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conveyor.convert.options import ConvertOptions
from conveyor.monitoring.profile import PROFILE_FILE, REFERENCE_SAMPLE_FILE
from conveyor.registration import register_path
from conveyor.rollout.analysis.expectation import ExpectedAgreement, expectation_line


@pytest.fixture
def retrains(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two 3-class logistic regressions trained on different halves of the same rows, and rows to gate on."""
    import joblib
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=600, n_features=4, n_informative=3, n_redundant=0, n_classes=3,
                               class_sep=0.8, random_state=0)  # fmt: skip
    frame = pd.DataFrame(x.round(4), columns=["a", "b", "c", "d"])
    labels = np.array(["ham", "eggs", "spam"])[y]
    for name, rows in (("v1", slice(0, 200)), ("v2", slice(200, 400))):
        joblib.dump(LogisticRegression(max_iter=300).fit(frame[rows], labels[rows]), tmp_path / f"{name}.joblib")
    frame.tail(200).to_csv(tmp_path / "rows.csv", index=False)
    return tmp_path / "v1.joblib", tmp_path / "v2.joblib", tmp_path / "rows.csv"


def test_the_gate_sample_is_kept_for_agreement_not_as_a_drift_profile_and_stables_serves_a_version_without(
    retrains: tuple[Path, Path, Path], conveyor_home: Path
) -> None:
    from conveyor.registry.config import open_registry
    from conveyor.rollout.offline_agreement import measure_expected_agreement

    first, second, rows = retrains
    registry = open_registry()
    heard: list[str] = []
    sampled = register_path(registry, first, "triage", ConvertOptions(sample=rows), report=heard.append)
    files = {f.path for f in sampled.files}
    assert REFERENCE_SAMPLE_FILE in files and PROFILE_FILE not in files
    assert any(line.startswith("reference sample: 200 items of rows.csv (the gate's --sample)") for line in heard)

    bare = register_path(registry, second, "triage", ConvertOptions(), report=lambda _: None)
    assert REFERENCE_SAMPLE_FILE not in {f.path for f in bare.files}
    expected = measure_expected_agreement("triage:1", "triage:2")  # the new version keeps none: stable's
    assert expected.source == f"triage:1 {REFERENCE_SAMPLE_FILE}" and expected.items == 200
    assert 0.5 < expected.share < 1 and 0 < expected.chance < 0.5


def test_without_any_sample_the_measurement_says_why(retrains: tuple[Path, Path, Path], conveyor_home: Path) -> None:
    from conveyor.registry.config import open_registry
    from conveyor.rollout.offline_agreement import NothingToMeasure, measure_expected_agreement

    registry = open_registry()
    for path in retrains[:2]:
        register_path(registry, path, "triage", ConvertOptions(), report=lambda _: None)
    with pytest.raises(NothingToMeasure, match=r"neither triage:2 nor triage:1 keeps a reference sample"):
        measure_expected_agreement("triage:1", "triage:2")


def test_rollout_start_says_in_one_line_what_the_agreement_is_held_to() -> None:
    limits = SimpleNamespace(mirror_percent=20.0, min_agreement=None, agreement_tolerance=0.05,
                             min_agreement_over_chance=0.5)  # fmt: skip
    expected = ExpectedAgreement(
        share=0.877, chance=0.34, items=300, source="triage:2 monitoring/reference-sample.json"
    )
    assert expectation_line(limits, expected, "") == (
        "agreement: expected 87.7%, measured at start on 300 items of triage:2 monitoring/reference-sample.json "
        "(34.0% by chance); the canary is held to 82.7%"
    )
    assert expectation_line(limits, None, "a model without labels") == (
        "agreement: held to the fixed 90% bar; nothing measured at start: a model without labels"
    )
    limits.min_agreement = 0.8
    assert (
        expectation_line(limits, None, "")
        == "agreement: held to --min-agreement 80.0%, as set (nothing measured at start)"
    )


def test_a_sample_in_pandas_split_form_as_mlflow_logs_it_is_kept_as_the_reference_sample(
    retrains: tuple[Path, Path, Path], conveyor_home: Path
) -> None:
    import pandas as pd

    from conveyor.registry.config import open_registry

    first, _, rows = retrains
    example = rows.with_name("input_example.json")  # MLflow's input_example.json: pandas' split form
    example.write_text(pd.read_csv(rows).head(5).to_json(orient="split"))
    heard: list[str] = []
    version = register_path(open_registry(), first, "triage", ConvertOptions(sample=example), report=heard.append)
    assert REFERENCE_SAMPLE_FILE in {f.path for f in version.files}
    assert any(line.startswith("reference sample: 5 items of input_example.json") for line in heard), heard
    assert not any(line.startswith("no reference sample kept") for line in heard)
