"""``conveyor verify --write-contract``: record a starter contract from a running server, for review."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.verify.checks import Context
from conveyor.verify.contract import Contract, GoldenCase, Latency, V2Settings
from conveyor.verify.examples import read_examples
from conveyor.verify.json_types import json_type
from conveyor.verify.task_contracts import for_task, served_metadata

#: the least p95 objective a recorded contract sets (5x the p95 measured while recording, at least this)
RECORDED_P95_FLOOR_MS = 250.0

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


def golden_case(name: str, example: Any, answer: Any) -> GoldenCase:
    """A golden case expecting ``answer``: a classifier's label exactly (its probabilities may
    move by a rounding between builds), a regressor's value within 0.1%, else the whole answer."""
    item, prefix = (answer[0], "0.") if isinstance(answer, list) and len(answer) == 1 else (answer, "")
    if isinstance(item, dict) and "label" in item:
        return GoldenCase(name=name, input=[example], field=prefix + "label", exact=item["label"])
    if isinstance(item, dict) and isinstance(item.get("value"), int | float) and not isinstance(item["value"], bool):
        value = float(item["value"])
        margin = max(abs(value) * 1e-3, 1e-6)
        return GoldenCase(name=name, input=[example], field=prefix + "value", within=(value - margin, value + margin))
    return GoldenCase(name=name, input=[example], exact=answer)


def record_contract(
    ctx: Context, examples: list[Any] | None, model_name: str | None, sample: Path | None = None
) -> Contract:
    """A contract recorded from the server's answers: the model's task decides the sample, the bad
    inputs and the v2 inputs (:mod:`task_contracts`); ``examples``, or those read from ``sample``
    (default: the task's sample input), become golden cases with the answers the server gave."""
    v2 = None
    if model_name and ctx.client.get(ctx.url(f"/v2/models/{model_name}")).status_code == 200:
        v2 = V2Settings(model=model_name)
    contract = ctx.contract.model_copy(update={"v2": v2})
    metadata = served_metadata(ctx.url(""), ctx.client, v2) if v2 is not None else {}
    contract = for_task(contract, metadata)
    if sample is not None:
        examples = read_examples(sample, (metadata.get("parameters") or {}).get("features"))
    if not examples:  # the contract's (or the task's) sample, else the reference model's texts
        examples = list(contract.sample_input) if "sample_input" in contract.model_fields_set else DEFAULT_EXAMPLES
    golden, answers = [], []
    for index, example in enumerate(examples, start=1):
        response = ctx.post_json([example])
        if response.status_code != 200:
            raise InvalidInput(
                f"example {index} ({str(example)[:60]}) answered HTTP {response.status_code}: {response.text[:200]}"
            )
        answers.append(response.json())
        golden.append(golden_case(f"example-{index}", example, response.json()))
    invalid = []
    for case in contract.invalid:
        response = ctx.client.request(
            contract.method,
            ctx.url(contract.endpoint),
            content=case.body.encode(),
            headers={"Content-Type": case.content_type},
        )
        status: int | str = response.status_code if 400 <= response.status_code < 500 else "4xx"
        invalid.append(case.model_copy(update={"status": status}))

    def timed(_: int) -> float:
        started = time.perf_counter()
        ctx.post_json([examples[0]])
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(max_workers=4) as pool:
        latencies = sorted(pool.map(timed, range(40)))
    p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]
    return contract.model_copy(
        update={
            "sample_input": [examples[0]],
            "response_schema": contract.response_schema
            if "response_schema" in contract.model_fields_set  # the task's, naming its labels
            else infer_schema(answers[0]),
            "golden": golden,
            "invalid": invalid,
            # loose on purpose: recorded on one machine, held on others (CI runners, a busy laptop)
            "latency": Latency(p95_ms=max(RECORDED_P95_FLOOR_MS, math.ceil(5 * p95)), concurrency=4, requests=100),
        }
    )
