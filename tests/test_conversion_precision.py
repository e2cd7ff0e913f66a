"""``--precision``: what a tabular model's graph computes in, chosen or tried (issue 45, item 3).

A StandardScaler over timestamp-sized numbers is the case float32 changes (it keeps steps of 128
around 1.7e9); the refusal says in its first line what crossed the gate and which option changes
it, and the kept precision is a property of the version."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conveyor.convert.gate import GateReport, headline
from conveyor.precision import Precision


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scaled-timestamp LogisticRegression whose probabilities float32 moves, and its rows."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path_factory.mktemp("stamped")
    random = np.random.default_rng(45)
    frame = pd.DataFrame({"seen_at": 1.7e9 + random.normal(0, 3, 200), "amount": random.normal(0, 1, 200)})
    late = (frame.seen_at - 1.7e9 + frame.amount + random.normal(0, 0.5, 200)) > 0
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, late), folder / "model.joblib")
    frame.to_csv(folder / "rows.csv", index=False)
    return folder / "model.joblib", folder / "rows.csv"


def _convert(stamped: tuple[Path, Path], out: Path, **options: Any) -> Any:
    from conveyor.convert import ConvertOptions, convert_model

    return convert_model(stamped[0], out, "stamped", ConvertOptions(sample=stamped[1], **options))


def test_auto_keeps_double_where_float32_moves_the_answers_and_float32_alone_is_refused_naming_the_options(
    stamped: tuple[Path, Path], tmp_path: Path
) -> None:
    from conveyor.convert.gate import ConversionRefused

    kept = _convert(stamped, tmp_path / "auto")
    assert kept.report.precision == "double" and "computed in double (in float32: " in kept.report.summary()
    with pytest.raises(ConversionRefused) as refused:
        _convert(stamped, tmp_path / "float32", precision=Precision.FLOAT32)
    first = str(refused.value).splitlines()[0]
    assert re.search(
        r"; nothing was registered\. Over the gate in float32: labels agree on [\d.]+% < --min-agreement 0\.999, "
        r"largest difference [\d.]+ > --tolerance 0\.0001\. To register it: --precision double, or --tolerance ",
        first,
    ), first
    assert str(refused.value).splitlines()[-1] == "  (the graph computes in float32, as --precision float32 asked)"
    assert _convert(stamped, tmp_path / "double", precision=Precision.DOUBLE).report.precision == "double"


def test_the_kept_precision_is_a_property_of_the_version(stamped: tuple[Path, Path], tmp_path: Path) -> None:
    from conveyor.convert import ConvertOptions
    from conveyor.registration import register_path
    from conveyor.registry.config import open_registry

    registry = open_registry(str(tmp_path / "registry"))
    version = register_path(
        registry, stamped[0], "stamped", ConvertOptions(sample=stamped[1]), report=lambda text: None
    )
    assert version.properties["precision"] == "double"


def test_a_framework_without_double_refuses_precision_double_in_one_line(tmp_path: Path) -> None:
    import lightgbm

    from conveyor.convert import ConvertOptions, convert_model
    from conveyor.errors import InvalidInput

    x = np.random.default_rng(0).normal(size=(100, 2))
    lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, x[:, 0] > 0).booster_.save_model(tmp_path / "m.txt")
    with pytest.raises(
        InvalidInput, match=r"^--precision double: onnxmltools .* converts lightgbm models in float32 only$"
    ):
        convert_model(tmp_path / "m.txt", tmp_path / "out", "m", ConvertOptions(precision=Precision.DOUBLE))


def test_the_refusal_line_names_what_crossed_the_gate_and_the_thresholds_that_accept_it() -> None:
    report = GateReport(task="tabular-classification", rows=400, sample="rows.csv", agreement=0.9941,
                        max_difference=0.02213, passed=False)  # fmt: skip
    line = headline(report, [report.accepted_by()])
    assert line == (
        "the converted model does not answer as the original: 400 rows (rows.csv), labels agree on 99.41%, largest "
        "difference 0.022; nothing was registered. Over the gate labels agree on 99.41% < --min-agreement 0.999, "
        "largest difference 0.022 > --tolerance 0.0001. To register it: --tolerance 0.023 --min-agreement 0.994"
    )
