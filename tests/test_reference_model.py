"""The reference MiniLM sentiment model: built (or taken from the cache), gated, served for real."""

from __future__ import annotations

import json

import httpx
import onnx
import pytest
from examples.sentiment.build import build

from tests.conftest import REPO, Server, start_server

# builds (or reuses) the reference MiniLM model
pytestmark = [pytest.mark.slow(seconds=300), pytest.mark.timeout(900)]

CLASSIC = [
    "MLOps is critical for robustness",
    "espresso is too strong",
    "Containers are more or less interesting",
]


@pytest.fixture(scope="module")
def reference_model() -> dict:
    out = REPO / "models" / "sentiment"
    record = build(out, REPO / "data")
    return {"dir": out, **record}


def test_reference_model_passes_its_quality_gate(reference_model: dict) -> None:
    metrics = reference_model["metrics"]
    assert metrics["accuracy"] >= 0.75
    assert metrics["accuracy"] > metrics["vader_lexicon_accuracy"]
    assert metrics["test_size"] > 4000
    saved = json.loads((reference_model["dir"] / "metrics.json").read_text())
    assert saved == metrics


def test_reference_model_is_one_onnx_graph_with_mask_and_logits(reference_model: dict) -> None:
    model = onnx.load(reference_model["dir"] / "model.onnx", load_external_data=False)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 2


@pytest.fixture(scope="module")
def served_reference(reference_model: dict, tmp_path_factory) -> Server:
    server = start_server(reference_model["dir"], tmp_path=tmp_path_factory.mktemp("reference"))
    yield server
    server.stop()


def test_classic_calls_answer_json_booleans(served_reference: Server) -> None:
    answers = {}
    for text in CLASSIC:
        response = httpx.post(
            f"{served_reference.url}/predict",
            content=json.dumps([text]),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200
        assert response.content in (b'{"positive":true}', b'{"positive":false}')
        answers[text] = response.json()["positive"]
    print("reference model answers:", answers)


def test_reference_model_gets_clear_cases_right(served_reference: Server) -> None:
    texts = [
        "I love this phone, it is wonderful and works perfectly",
        "This was the worst meal I have ever had, truly awful",
        "What a fantastic, heartwarming film",
        "The service was rude and the room was dirty",
    ]
    answers = httpx.post(f"{served_reference.url}/predict", json=texts).json()
    assert [a["positive"] for a in answers] == [True, False, True, False]
