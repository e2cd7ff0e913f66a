"""A model that fails inside onnxruntime answers 500 and the exchange ends there.

Starlette's last-resort handler answers 500 and then re-raises, and uvicorn drops the connection
after such an exception: a keep-alive client (a KServe or Triton client, httpx, the router's pool)
then gets its next request on that connection reset, and a request that might have succeeded
fails without an answer. The ASGI app must answer its own faults and return normally; an
exception escaping it is what ``ASGITransport`` raises here and what makes uvicorn drop the connection.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np

ROWS_OF_FOUR = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
ROWS_OF_EIGHT = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [1.0] * 8}]}


def _odd_batches_fail(folder: Path) -> Path:
    """A regression graph that reshapes its input to [-1, 8]: an odd number of rows fails at run time."""
    from onnx import TensorProto, helper, numpy_helper, save

    weights = numpy_helper.from_array(np.ones((4, 1), dtype=np.float32), "W")
    eight = numpy_helper.from_array(np.array([-1, 8], dtype=np.int64), "eight")
    four = numpy_helper.from_array(np.array([-1, 4], dtype=np.int64), "four")
    nodes = [
        helper.make_node("Reshape", ["input", "eight"], ["wide"]),
        helper.make_node("Reshape", ["wide", "four"], ["rows"]),
        helper.make_node("MatMul", ["rows", "W"], ["value"]),
    ]
    graph = helper.make_graph(
        nodes,
        "odd",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 1])],
        [weights, eight, four],
    )
    folder.mkdir()
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(folder / "model.onnx"))
    return folder


def test_a_model_failing_at_run_time_answers_500_and_the_app_returns_normally(tmp_path: Path) -> None:
    from conveyor.serving.app import create_app
    from conveyor.serving.dataplane import DataPlane, ServingOptions
    from conveyor.serving.spec import resolve_model

    plane = DataPlane(resolve_model(_odd_batches_fail(tmp_path / "odd")), ServingOptions())

    async def calls() -> list[httpx.Response]:
        await plane.load()
        try:
            transport = httpx.ASGITransport(app=create_app(plane))  # raises whatever escapes the app
            async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
                path = "/v2/models/odd/infer"
                return [await client.post(path, json=body) for body in (ROWS_OF_FOUR, ROWS_OF_EIGHT)]
        finally:
            await plane.close()

    failed, answered = asyncio.run(calls())
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal server error"}
    assert answered.status_code == 200
    assert answered.json()["outputs"][0]["data"] == [4.0, 4.0]
