"""The ONNX facts registration reads without the onnx package are the ones onnx's own classes read."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from conveyor.registry.onnx_info import framework_of, read_signature


def _as_onnx_reads_it(path: Path) -> dict[str, object]:
    model = onnx.load(str(path))

    def value(info: onnx.ValueInfoProto) -> dict[str, object]:
        if not info.type.HasField("tensor_type"):
            return {"name": info.name, "type": info.type.WhichOneof("value"), "shape": None}
        tensor = info.type.tensor_type
        shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
        return {"name": info.name, "type": TensorProto.DataType.Name(tensor.elem_type).lower(), "shape": shape}

    initializers = {i.name for i in model.graph.initializer}
    return {
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": [value(i) for i in model.graph.input if i.name not in initializers],
        "outputs": [value(o) for o in model.graph.output],
        "ir_version": model.ir_version,
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
    }


def _model(path: Path) -> Path:
    unknown = helper.make_tensor_value_info("ids", TensorProto.INT64, None)
    unknown.type.tensor_type.shape.dim.add()  # a dimension with neither a size nor a name: "?"
    weights = helper.make_tensor("w", TensorProto.FLOAT16, [3, 2], [0.5] * 6)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("SequenceEmpty", [], ["seq"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, -1]),
            unknown,
            helper.make_tensor_value_info("w", TensorProto.FLOAT16, [3, 2]),  # an initializer listed as input
            helper.make_tensor_value_info("flags", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, -1]),
            helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None),
        ],
        [weights],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="tests", producer_version="1.0")
    onnx.save(model, str(path))
    return path


def test_the_signature_is_what_onnx_reads(tmp_path: Path) -> None:
    path = _model(tmp_path / "model.onnx")
    signature = read_signature(path)
    assert signature == _as_onnx_reads_it(path)
    assert signature["inputs"][0]["shape"] == ["batch", 3, -1]  # type: ignore[index]
    assert signature["outputs"][1] == {"name": "seq", "type": "sequence_type", "shape": None}  # type: ignore[index]


def test_the_header_gives_framework_facts(tmp_path: Path) -> None:
    framework, version, extra = framework_of(_model(tmp_path / "model.onnx"))
    assert (framework, version) == ("onnx", "opset 17")
    assert extra == {"onnx.ir_version": str(onnx.IR_VERSION), "onnx.producer": "tests 1.0", "onnx.opset": "17"}


def test_bytes_that_are_no_model_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x07not a protobuf at all")
    with pytest.raises(ValueError):
        read_signature(path)
