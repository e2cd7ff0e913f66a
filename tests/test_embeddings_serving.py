"""An embedding model (task ``text-embedding``): the reference MiniLM encoder registered as a version and
served as OpenAI's ``/v1/embeddings``, in-process, with the official ``openai`` client (which asks for
base64 by default), plain floats, usage, and OpenAI's error shape.  The encoder is written once per module."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from starlette.testclient import TestClient

from conveyor.generative.embedding_app import app_for
from conveyor.minilm import SentenceEncoder, write_embedding_version
from conveyor.registry.config import open_local
from conveyor.serving.spec import resolve_model


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_embedding_version(tmp_path_factory.mktemp("minilm") / "minilm", name="embed")


@pytest.fixture(scope="module")
def http(encoder_folder: Path) -> Iterator[TestClient]:
    resolved = resolve_model(encoder_folder, None, None, None)
    with TestClient(app_for(resolved, threads=1)) as client:
        yield client


@pytest.fixture(scope="module")
def client(http: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)


def test_the_minilm_encoder_registers_as_a_text_embedding_version(encoder_folder: Path, conveyor_home: Path) -> None:
    registry = open_local()
    version = registry.register(encoder_folder, "embed", aliases=["production"])
    assert {entry.path for entry in version.files} == {"model.onnx", "tokenizer.json", "model.yaml"}
    _, folder = registry.cached("embed@production")
    spec = resolve_model(folder, None, None, None).spec
    assert spec.task == "text-embedding" and spec.labels == [] and spec.max_length == 256


def test_the_openai_client_embeds_texts_in_order_with_usage(client: openai.OpenAI, encoder_folder: Path) -> None:
    texts = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Stock markets fell sharply today."]
    answer = client.embeddings.create(model="embed", input=texts)  # the client asks for base64 and decodes it
    vectors = np.array([item.embedding for item in answer.data])
    assert [item.index for item in answer.data] == [0, 1, 2] and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # sentence-transformers' normalised vectors
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.5 > unrelated  # meaning, not words: the cat and the kitten are near, the market far
    reference = SentenceEncoder.from_files(encoder_folder / "model.onnx", encoder_folder / "tokenizer.json").embed(
        texts
    )
    assert np.allclose(vectors, reference, atol=1e-5)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 3 * 5  # the tokens read, [CLS] and [SEP] too
    assert answer.model == "embed"


def test_float_and_base64_answers_are_the_same_numbers(http: TestClient) -> None:
    floats = http.post("/v1/embeddings", json={"model": "embed", "input": "hello world"}).json()
    packed = http.post(
        "/v1/embeddings", json={"model": "embed", "input": ["hello world"], "encoding_format": "base64"}
    ).json()
    assert floats["object"] == "list" and floats["data"][0]["object"] == "embedding"
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, np.array(floats["data"][0]["embedding"], dtype=np.float32))
    assert floats["usage"] == packed["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_bad_requests_are_openai_errors(client: openai.OpenAI, http: TestClient) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="embed", input="hi", dimensions=128)
    assert refused.value.body["param"] == "dimensions"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="other", input="hi")
    for body, param in (
        ({"model": "embed", "input": []}, "input"),
        ({"model": "embed", "input": [[1, 2, 3]]}, "input"),  # token arrays: this server tokenizes itself
        ({"model": "embed", "input": ""}, "input"),
        ({"model": "embed", "input": "hi", "encoding_format": "int8"}, "encoding_format"),
    ):
        answer = http.post("/v1/embeddings", json=body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
    assert http.get("/v1/models").json()["data"][0]["id"] == "embed"
    metrics = http.get("/metrics").text
    assert 'conveyor_embedded_texts_total{model="embed",version="1"}' in metrics
