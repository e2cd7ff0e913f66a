"""SmoothQuant before dynamic int8: exact in float, smaller quantization error with outlier channels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conveyor.optimize import smoothquant
from conveyor.optimize.run import optimize
from conveyor.optimize.variants import Calibration, calibration_for, make_variant
from conveyor.registry.config import open_local
from tests import models
from tests.test_optimize import sentences


def outlier_model(path: Path, rng: np.random.Generator) -> Path:
    """x [n, 16] -> one channel scaled x60 (a transformer-style outlier) -> MatMul W -> y."""
    scale = np.ones(16, dtype=np.float32)
    scale[3] = 60.0
    weight = rng.normal(size=(16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["h"]), helper.make_node("MatMul", ["h", "w"], ["y"])],
        "outlier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
        [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def quantized(source: Path, dest: Path) -> Path:
    """Dynamic int8 of every MatMul but the float parts an outlier split adds (none in an unsplit model)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    outliers = [n.name for n in onnx.load(source).graph.node if n.name.endswith(smoothquant.OUTLIER)]
    quantize_dynamic(str(source), str(dest), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=outliers)
    return dest


def calibrated(path: Path, x: np.ndarray) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model with its nodes named, and the per-channel peaks of its weight groups' inputs on ``x``."""
    model = onnx.load(path)
    smoothquant.name_nodes(model)
    return model, smoothquant.activation_ranges(model, [{"x": x}], smoothquant.weight_matmul_groups(model))


def test_smoothing_is_exact_in_float_and_shrinks_int8_error_on_an_outlier_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    plain = outlier_model(tmp_path / "plain.onnx", rng)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    model = onnx.load(plain)
    smoothquant.name_nodes(model)
    groups = smoothquant.weight_matmul_groups(model)
    assert [g.activation for g in groups] == ["h"] and len(groups[0].matmuls) == 1
    ranges = smoothquant.activation_ranges(model, [{"x": x[:32]}], groups)
    assert ranges["h"].shape == (16,) and ranges["h"][3] > 20 * np.median(ranges["h"])
    smooth_path = tmp_path / "smooth.onnx"
    onnx.save(smoothquant.smooth(model, ranges, alpha=0.8), smooth_path)
    onnx.checker.check_model(onnx.load(smooth_path))

    exact = run(plain, x)
    np.testing.assert_allclose(run(smooth_path, x), exact, rtol=1e-4, atol=1e-4)  # same function in float
    error_plain = np.abs(run(quantized(plain, tmp_path / "p8.onnx"), x) - exact).mean()
    error_smooth = np.abs(run(quantized(smooth_path, tmp_path / "s8.onnx"), x) - exact).mean()
    assert error_smooth < error_plain / 2, (error_smooth, error_plain)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.model_dir(tmp_path_factory.mktemp("smooth") / "bert", "bert", models.tiny_bert_model)


def test_outlier_channels_split_off_are_exact_in_float_and_shrink_int8_error_past_smoothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    plain = outlier_model(tmp_path / "plain.onnx", rng)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    model, ranges = calibrated(plain, x[:32])
    assert list(smoothquant.outlier_channels(ranges["h"], ratio=4.0, most=8)) == [3]
    smoothed, split = tmp_path / "smooth.onnx", tmp_path / "split.onnx"
    onnx.save(smoothquant.smooth(model, ranges, alpha=0.8), smoothed)
    onnx.save(smoothquant.smooth(model, ranges, alpha=0.8, outlier_ratio=4.0, max_outliers=8), split)
    onnx.checker.check_model(onnx.load(split))
    parts = [n for n in onnx.load(split).graph.node if n.name.endswith(smoothquant.OUTLIER)]
    assert [n.op_type for n in parts] == ["MatMul"]

    exact = run(plain, x)
    np.testing.assert_allclose(run(split, x), exact, rtol=1e-4, atol=1e-4)  # same function in float
    error_smooth = np.abs(run(quantized(smoothed, tmp_path / "s8.onnx"), x) - exact).mean()
    error_split = np.abs(run(quantized(split, tmp_path / "x8.onnx"), x) - exact).mean()
    assert error_split < error_smooth, (error_split, error_smooth)


def test_int8_smooth_keeps_the_outlier_channels_float_and_the_rest_int8(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    plain = outlier_model(tmp_path / "plain.onnx", rng)
    calibration = Calibration([{"x": rng.normal(size=(32, 16)).astype(np.float32)}], 32)
    params = make_variant("int8-smooth", plain, tmp_path / "v.onnx", calibration)
    assert params["split_groups"] == 1 and params["float_channels"] == 1
    variant = onnx.load(tmp_path / "v.onnx")
    float_matmuls = [n for n in variant.graph.node if n.op_type == "MatMul"]
    assert float_matmuls and all(n.name.endswith(smoothquant.OUTLIER) for n in float_matmuls)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in variant.graph.node}


def test_fused_attention_computes_what_the_unfused_graph_does(bert_folder: Path, tmp_path: Path) -> None:
    params = make_variant("fused", bert_folder / "model.onnx", tmp_path / "fused.onnx")
    layers = models.TINY_BERT.num_layers
    assert params["fusions"]["Attention"] == layers and params["fusions"]["SkipLayerNormalization"] == 2 * layers
    ops = {node.op_type for node in onnx.load(tmp_path / "fused.onnx").graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= ops and "Softmax" not in ops
    calibration = calibration_for(bert_folder, sentences(24, seed=3))
    before = ort.InferenceSession(str(bert_folder / "model.onnx"), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(tmp_path / "fused.onnx"), providers=["CPUExecutionProvider"])
    for feeds in calibration.feeds:
        np.testing.assert_allclose(after.run(None, feeds)[0], before.run(None, feeds)[0], rtol=1e-4, atol=1e-4)
    make_variant("fused-int8-smooth", bert_folder / "model.onnx", tmp_path / "fused8.onnx", calibration)
    assert "QAttention" in {node.op_type for node in onnx.load(tmp_path / "fused8.onnx").graph.node}


def test_optimize_calibrates_int8_smooth_on_the_calibration_texts(conveyor_home: Path, bert_folder: Path) -> None:
    registry = open_local()
    registry.register(bert_folder, "bert", lineage=None)
    outcome = optimize(
        registry,
        "bert:1",
        sentences(60),
        methods=["int8-smooth"],
        calibration_texts=sentences(40, seed=5),
        min_agreement=0.9,
        measure=False,
    )
    assert outcome.chosen is not None and outcome.chosen.method == "int8-smooth"
    version = registry.resolve("bert:2")
    params = json.loads(version.properties["optimization_params"])
    assert params["calibration_texts"] == 40 and params["smoothquant_alpha"] == 0.8
    assert version.lineage.optimized_from == "bert:1"
