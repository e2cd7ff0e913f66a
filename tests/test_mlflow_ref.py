"""MLflow model references as users write them, parsed before MLflow's client is imported."""

from __future__ import annotations

import pytest

from conveyor.errors import InvalidInput
from conveyor.interop.mlflow_ref import MlflowRef, parse_mlflow_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mlflow://mlflow.internal:5000/risk/3", MlflowRef("http://mlflow.internal:5000", "risk", "3")),
        ("mlflow://127.0.0.1:5000/risk@champion", MlflowRef("http://127.0.0.1:5000", "risk", alias="champion")),
        ("mlflow+https://mlflow.example.com/team/risk/12", MlflowRef("https://mlflow.example.com", "team/risk", "12")),
        ("mlflow://h:1/credit%20risk/2", MlflowRef("http://h:1", "credit risk", "2")),
    ],
)
def test_mlflow_urls_name_the_server_the_model_and_a_version_or_alias(text: str, expected: MlflowRef) -> None:
    assert parse_mlflow_ref(text) == expected


def test_models_uris_take_the_tracking_server_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000/")
    assert parse_mlflow_ref("models:/risk/4") == MlflowRef("http://127.0.0.1:5000", "risk", "4")
    assert parse_mlflow_ref("models:/risk@prod", "https://other") == MlflowRef("https://other", "risk", alias="prod")
    assert MlflowRef("http://127.0.0.1:5000", "risk", "4").uri == "mlflow://127.0.0.1:5000/risk/4"
    assert MlflowRef("https://m.example", "risk", alias="a").uri == "mlflow+https://m.example/risk@a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mlflow://h:1/risk", "name a version or an alias"),
        ("mlflow://h:1/risk/0", "name a version or an alias"),
        ("mlflow://h:1/risk@", "name a version or an alias"),
        ("http://h:1/risk/1", "not an MLflow model reference"),
        ("mlflow:///risk/1", "not an MLflow model reference"),
        ("models:/risk/1", "needs the tracking server"),
    ],
)
def test_a_malformed_reference_says_which_forms_there_are(
    text: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(InvalidInput, match=message):
        parse_mlflow_ref(text)
