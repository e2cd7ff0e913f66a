"""Open Inference Protocol v2 against a real server: JSON, binary tensors, tritonclient."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import Server, start_server
from tests.models import doubling_model, expected_positive

TEXTS = ["good good", "bad", "great but awful awful", "w1 w2 w3"]


def infer(server: Server, body: dict, path: str = "/v2/models/votes/infer") -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=10)


def text_request(texts: list[str], shape: list[int] | None = None, **extra) -> dict:
    return {
        "inputs": [{"name": "text", "shape": shape or [len(texts)], "datatype": "BYTES", "data": texts}],
        **extra,
    }


def test_server_metadata_and_health(served_vote: Server) -> None:
    meta = httpx.get(f"{served_vote.url}/v2").json()
    assert meta["name"] == "conveyor"
    assert "binary_tensor_data" in meta["extensions"]
    assert httpx.get(f"{served_vote.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{served_vote.url}/v2/health/ready").json() == {"ready": True}


@pytest.mark.parametrize("path", ["/v2/models/votes", "/v2/models/votes/versions/1"])
def test_model_metadata_on_plain_and_versioned_routes(served_vote: Server, path: str) -> None:
    meta = httpx.get(f"{served_vote.url}{path}").json()
    assert meta["name"] == "votes"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"] for o in meta["outputs"]} == {"logits", "label", "probabilities"}
    ready = httpx.get(f"{served_vote.url}{path}/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True


@pytest.mark.parametrize("path", ["/v2/models/votes/infer", "/v2/models/votes/versions/1/infer"])
def test_text_infer_returns_logits_and_labels(served_vote: Server, path: str) -> None:
    response = infer(served_vote, text_request(TEXTS, id="req-7"), path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "votes" and body["model_version"] == "1" and body["id"] == "req-7"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["logits"]["datatype"] == "FP32" and outputs["logits"]["shape"] == [4, 2]
    assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["shape"] == [4]
    expected = ["positive" if expected_positive(t) else "negative" for t in TEXTS]
    assert outputs["label"]["data"] == expected
    logits = np.array(outputs["logits"]["data"]).reshape(4, 2)
    assert logits[0].tolist() == [0.5, 2.0]  # two positive votes vs the 0.5 head start


def test_nested_data_and_n_by_1_shape_are_accepted(served_vote: Server) -> None:
    body = text_request([[t] for t in TEXTS], shape=[4, 1], outputs=[{"name": "label"}])
    response = infer(served_vote, body)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert [o["name"] for o in outputs] == ["label"]
    assert len(outputs[0]["data"]) == 4


def test_probabilities_on_request(served_vote: Server) -> None:
    response = infer(served_vote, text_request(["good"], outputs=[{"name": "probabilities"}]))
    probs = response.json()["outputs"][0]["data"]
    assert pytest.approx(sum(probs), abs=1e-6) == 1.0
    assert probs[1] > probs[0]


BAD_V2 = [
    ("no inputs", {"inputs": []}, 422, "inputs"),
    ("not an object", [1, 2], 422, "expected a JSON object"),
    (
        "unknown datatype",
        {"inputs": [{"name": "text", "shape": [1], "datatype": "STRING", "data": ["x"]}]},
        422,
        "unknown datatype",
    ),
    (
        "shape mismatch",
        {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["x"]}]},
        422,
        "needs 3 elements, got 1",
    ),
    ("missing data", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES"}]}, 422, "'data' is missing"),
    (
        "numbers as text",
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [1]}]},
        422,
        "must be strings",
    ),
    ("unknown output", text_request(["good"], outputs=[{"name": "embedding"}]), 400, "unknown output"),
    (
        "two text inputs",
        {
            "inputs": [
                {"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]},
                {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["y"]},
            ]
        },
        422,
        "exactly one BYTES input",
    ),
    ("too many texts", text_request(["good"] * 9), 413, "too many items"),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD_V2, ids=[c[0] for c in BAD_V2])
def test_bad_v2_requests_get_4xx_with_message(served_vote: Server, case: str, body, status: int, message: str) -> None:
    response = infer(served_vote, body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_malformed_json_on_infer_is_400(served_vote: Server) -> None:
    response = httpx.post(f"{served_vote.url}/v2/models/votes/infer", content=b"{", timeout=5)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    ["/v2/models/other", "/v2/models/other/ready", "/v2/models/votes/versions/2", "/v2/models/votes/versions/2/ready"],
)
def test_unknown_model_or_version_is_404(served_vote: Server, path: str) -> None:
    response = httpx.get(f"{served_vote.url}{path}")
    assert response.status_code == 404
    assert "not found" in response.json()["error"]


def test_unknown_model_on_infer_is_404(served_vote: Server) -> None:
    response = infer(served_vote, text_request(["good"]), "/v2/models/other/versions/1/infer")
    assert response.status_code == 404
    assert "'other' not found" in response.json()["error"]


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http_client_can_call_the_server(served_vote: Server, binary: bool) -> None:
    client = triton.InferenceServerClient(served_vote.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("votes")
    assert client.is_model_ready("votes", "1")
    assert client.get_model_metadata("votes")["name"] == "votes"

    texts = np.array([t.encode() for t in TEXTS], dtype=np.object_)
    text_input = triton.InferInput("text", [len(TEXTS)], "BYTES")
    text_input.set_data_from_numpy(texts, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("logits", binary_data=binary),
    ]
    result = client.infer("votes", [text_input], outputs=outputs, model_version="1")
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label").tolist()]
    assert labels == ["positive" if expected_positive(t) else "negative" for t in TEXTS]
    logits = result.as_numpy("logits")
    assert logits.dtype == np.float32 and logits.shape == (4, 2)
    assert logits[0].tolist() == [0.5, 2.0]


def test_text_that_is_not_utf8_in_binary_data_is_a_422_naming_the_input(served_vote: Server) -> None:
    client = triton.InferenceServerClient(served_vote.url.removeprefix("http://"))
    text_input = triton.InferInput("text", [2], "BYTES")
    text_input.set_data_from_numpy(np.array([b"good", "Zürich".encode("latin-1")], dtype=np.object_), binary_data=True)
    with pytest.raises(triton.InferenceServerException) as refused:
        client.infer("votes", [text_input])
    assert refused.value.status() == "422"
    assert "input 'text' item 1: text is not valid UTF-8" in refused.value.message()


def test_tritonclient_sees_a_404_for_an_unknown_model(served_vote: Server) -> None:
    client = triton.InferenceServerClient(served_vote.url.removeprefix("http://"))
    text_input = triton.InferInput("text", [1], "BYTES")
    text_input.set_data_from_numpy(np.array([b"good"], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="not found"):
        client.infer("missing", [text_input])


@pytest.fixture(scope="module")
def served_tensor(model_root, tmp_path_factory) -> Server:
    path = doubling_model(model_root / "double.onnx")
    server = start_server(path, tmp_path=tmp_path_factory.mktemp("tensor"))
    yield server
    server.stop()


def test_a_model_without_tokenizer_takes_raw_tensors(served_tensor: Server) -> None:
    meta = httpx.get(f"{served_tensor.url}/v2/models/double").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    body = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6.5]]}]}
    response = httpx.post(f"{served_tensor.url}/v2/models/double/infer", json=body)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output == {"name": "y", "shape": [2, 3], "datatype": "FP32", "data": [2, 4, 6, 8, 10, 13]}


def test_raw_tensors_through_tritonclient_binary(served_tensor: Server) -> None:
    client = triton.InferenceServerClient(served_tensor.url.removeprefix("http://"))
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("double", [tensor], outputs=[triton.InferRequestedOutput("y")])
    np.testing.assert_array_equal(result.as_numpy("y"), x * 2)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": [{"name": "z", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, 400, "unknown input"),
        ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}, 400, "expected shape"),
        ({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}, 400, "dimensions"),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BOOL", "data": [True, False, True]}]},
            400,
            "expected float32",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": ["a", "b", "c"]}]},
            422,
            "must be numbers",
        ),
    ],
)
def test_bad_raw_tensors_are_4xx(served_tensor: Server, body: dict, status: int, message: str) -> None:
    response = httpx.post(f"{served_tensor.url}/v2/models/double/infer", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_predict_on_a_tensor_model_says_to_use_v2(served_tensor: Server) -> None:
    response = httpx.post(f"{served_tensor.url}/predict", json=["good"])
    assert response.status_code == 400
    assert "raw tensors" in response.json()["error"]
