"""``conveyor verify --write-contract``: record a starter contract from a running server, for review."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conveyor.verify.builtins.server import json_type
from conveyor.verify.checks import Context
from conveyor.verify.contract import DEFAULT_INVALID, Contract, GoldenCase, InvalidCase, Latency, V2Settings

DEFAULT_EXAMPLES = [
    "MLOps is critical for robustness",
    "I love this product, it works perfectly",
    "The service was rude and the food was cold",
]


def infer_schema(value: Any) -> dict[str, Any]:
    """The JSON Schema of one observed answer: its types, all observed keys required."""
    if isinstance(value, dict):
        return {
            "type": "object",
            "properties": {key: infer_schema(item) for key, item in value.items()},
            "required": sorted(value),
        }
    if isinstance(value, list):
        return {"type": "array", "items": infer_schema(value[0])} if value else {"type": "array"}
    return {"type": json_type(value)}


def record_contract(ctx: Context, examples: list[str], model_name: str | None) -> Contract:
    contract = ctx.contract
    golden, answers = [], []
    for index, text in enumerate(examples, start=1):
        response = ctx.post_json([text])
        response.raise_for_status()
        answers.append(response.json())
        golden.append(GoldenCase(name=f"example-{index}", input=[text], exact=response.json()))
    invalid = []
    for case in DEFAULT_INVALID:
        response = ctx.client.request(
            contract.method,
            ctx.url(contract.endpoint),
            content=case.body.encode(),
            headers={"Content-Type": case.content_type},
        )
        status: int | str = response.status_code if 400 <= response.status_code < 500 else "4xx"
        invalid.append(InvalidCase(name=case.name, body=case.body, content_type=case.content_type, status=status))  # type: ignore[arg-type]

    def timed(_: int) -> float:
        started = time.perf_counter()
        ctx.post_json([examples[0]])
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(max_workers=4) as pool:
        latencies = sorted(pool.map(timed, range(40)))
    p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]
    v2 = None
    if model_name and ctx.client.get(ctx.url(f"/v2/models/{model_name}")).status_code == 200:
        v2 = V2Settings(model=model_name)
    return contract.model_copy(
        update={
            "sample_input": [examples[0]],
            "response_schema": infer_schema(answers[0]),
            "golden": golden,
            "invalid": invalid,
            "latency": Latency(p95_ms=max(50.0, math.ceil(3 * p95)), concurrency=4, requests=100),
            "v2": v2,
        }
    )
