"""Batching under concurrency gives the same answers as one-by-one; models without a mask are never padded."""

from __future__ import annotations

import asyncio
import random
import re

import httpx
import numpy as np
import pytest

from conveyor.serving.model import RUN_OVERHEAD_TOKENS, plan_runs
from tests.conftest import Server, start_server
from tests.models import VOCAB, token_count

WORDS = VOCAB[2:]


def sentences(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(count)]


def v2_logits(server: Server, name: str, texts: list[str]) -> np.ndarray:
    body = {
        "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
        "outputs": [{"name": "logits"}],
    }
    response = httpx.post(f"{server.url}/v2/models/{name}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


async def concurrent_logits(server: Server, name: str, texts: list[str]) -> list[np.ndarray]:
    limits = httpx.Limits(max_connections=len(texts))
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:

        async def one(text: str) -> np.ndarray:
            body = {
                "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}],
                "outputs": [{"name": "logits"}],
            }
            response = await client.post(f"/v2/models/{name}/infer", json=body)
            assert response.status_code == 200, response.text
            return np.array(response.json()["outputs"][0]["data"], dtype=np.float32)

        return await asyncio.gather(*(one(t) for t in texts))


def batch_histogram(server: Server, name: str) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics").text
    count = float(re.search(rf'conveyor_batch_size_count{{model="{name}",version="1"}} (\S+)', text).group(1))
    total = float(re.search(rf'conveyor_batch_size_sum{{model="{name}",version="1"}} (\S+)', text).group(1))
    return count, total


@pytest.fixture(scope="module")
def served_bert(tiny_bert, tmp_path_factory) -> Server:
    server = start_server(tiny_bert, "--max-batch-size", "16", tmp_path=tmp_path_factory.mktemp("bert"))
    yield server
    server.stop()


def test_concurrent_requests_are_batched_and_match_unbatched_results(served_bert: Server) -> None:
    texts = sentences(48)
    alone = [v2_logits(served_bert, "tiny-bert", [t])[0] for t in texts]
    count_before, total_before = batch_histogram(served_bert, "tiny-bert")
    batched = asyncio.run(concurrent_logits(served_bert, "tiny-bert", texts))
    count_after, total_after = batch_histogram(served_bert, "tiny-bert")
    assert total_after - total_before == len(texts)
    assert count_after - count_before < len(texts), "concurrent requests were never batched together"
    for single, together in zip(alone, batched, strict=True):
        np.testing.assert_allclose(together, single, rtol=1e-4, atol=1e-5)


def test_one_request_with_mixed_lengths_matches_one_by_one(served_bert: Server) -> None:
    texts = sentences(16, seed=5)
    together = v2_logits(served_bert, "tiny-bert", texts)
    for text, row in zip(texts, together, strict=True):
        np.testing.assert_allclose(row, v2_logits(served_bert, "tiny-bert", [text])[0], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def served_no_mask(no_mask, tmp_path_factory) -> Server:
    server = start_server(no_mask, tmp_path=tmp_path_factory.mktemp("nomask"))
    yield server
    server.stop()


def test_model_without_attention_mask_is_never_padded(served_no_mask: Server) -> None:
    texts = sentences(24, seed=3)
    logits = v2_logits(served_no_mask, "no-mask", texts)
    # logit 0 is the sequence length the model saw: each text's own token count.
    assert logits[:, 0].tolist() == [float(token_count(t)) for t in texts]


def test_model_without_attention_mask_under_concurrency(served_no_mask: Server) -> None:
    texts = sentences(32, seed=4)
    results = asyncio.run(concurrent_logits(served_no_mask, "no-mask", texts))
    assert [r[0] for r in results] == [float(token_count(t)) for t in texts]
    predict = httpx.post(f"{served_no_mask.url}/predict", json=texts[:3]).json()
    assert len(predict) == 3 and all(type(p["positive"]) is bool for p in predict)


def test_plan_without_mask_groups_only_equal_lengths() -> None:
    lengths = [5, 3, 5, 7, 3, 3]
    runs = plan_runs(lengths, has_mask=False, max_run=64)
    assert sorted(i for run in runs for i in run) == list(range(6))
    for run in runs:
        assert len({lengths[i] for i in run}) == 1
    assert len(runs) == 3


def test_plan_with_mask_buckets_lengths_and_caps_run_size() -> None:
    lengths = [10, 11, 12, 10, 90, 91, 11]
    runs = plan_runs(lengths, has_mask=True, max_run=64)
    assert sorted(i for run in runs for i in run) == list(range(7))
    long_run = next(run for run in runs if 4 in run)
    assert set(long_run) == {4, 5}, "short and long texts must not share padding"
    padding = sum(len(run) * max(lengths[i] for i in run) - sum(lengths[i] for i in run) for run in runs)
    assert padding <= RUN_OVERHEAD_TOKENS * len(runs)
    capped = plan_runs([8] * 10, has_mask=True, max_run=4)
    assert [len(r) for r in capped] == [4, 4, 2]
