"""Ways to make an ONNX model faster without retraining it, one function per method.

* ``int8``: dynamic quantization of the weights to int8, per channel (``onnxruntime.quantization``);
  activations stay float and are quantized on the fly, so no calibration data is needed.
* ``int8-smooth``: the same after SmoothQuant (``smoothquant.py``), calibrated on texts, with each
  weight MatMul's few outlier input channels split off into a small float MatMul: mixed
  precision by channel, where the outliers that dynamic int8 cannot represent are.
* ``fused``: onnxruntime's transformer optimizer (``onnxruntime.transformers``, no torch needed)
  fuses each layer's attention into one ``Attention`` kernel, GELU with its bias and the
  residual adds into ``SkipLayerNormalization``; float, the same function.
* ``fused-int8-smooth``: ``fused``, then ``int8-smooth`` (the attention's Q, K and V weights
  quantized together, ``QAttention``).
* ``graph``: onnxruntime's extended graph optimizations (constant folding, fusions), done
  offline and saved, so a server loads the optimized graph instead of optimizing at start-up.

Which one is faster, and which one still agrees, depends on the model and the machine:
``run.optimize`` measures instead of assuming.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.errors import ConveyorError, InvalidInput

SMOOTH_ALPHA = 0.8  # how much of an activation's range moves into the weights (0: none, 1: all)
OUTLIER_RATIO = 4.0  # an input channel whose calibration peak is over 4x its group's median stays float
MAX_OUTLIERS = 8  # at most this many channels per group (the reference model has 1-4 above the ratio)
# REDUCE_RANGE_WHY: weights are quantized to 7 bits.  onnxruntime's int8 kernels on CPUs without VNNI
# (AVX2 only) multiply uint8 activations by int8 weights in pairs summed into int16, which saturates
# with full-range weights; a variant is made on one machine and served on others, so it is made
# for the weakest of them.  Measured on the reference model's held-out split, on an AVX2-only CPU:
# 98.9% label agreement with 7-bit weights, 98.2% with 8-bit.


@dataclass
class Calibration:
    """Model inputs for calibration texts (the model's own tokenization), a batch per feed."""

    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)
    texts: int = 0


class NotApplicable(ConveyorError):
    """The method has nothing to do on this model (no weight MatMul to quantize, no attention to fuse)."""


Maker = Callable[[Path, Path, Calibration], dict[str, Any]]  # (source model, destination, calibration) -> parameters


def int8_dynamic(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(dest), per_channel=True, reduce_range=True, weight_type=QuantType.QInt8)
    return {"weights": "int8 (7-bit range)", "per_channel": True, "activations": "dynamic"}


def int8_smooth(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    import onnx

    from conveyor.optimize import smoothquant

    if not calibration.feeds:
        raise InvalidInput("int8-smooth needs calibration texts (--calibrate FILE, or evaluation texts)")
    model = onnx.load(str(source))
    smoothquant.name_nodes(model)
    groups = smoothquant.weight_matmul_groups(model)
    if not groups:
        raise NotApplicable("no MatMul with a weight to quantize")
    ranges = smoothquant.activation_ranges(model, calibration.feeds, groups)
    smoothed = smoothquant.smooth(model, ranges, SMOOTH_ALPHA, OUTLIER_RATIO, MAX_OUTLIERS)
    outlier_parts = [node.name for node in smoothed.graph.node if node.name.endswith(smoothquant.OUTLIER)]
    with tempfile.TemporaryDirectory(prefix="conveyor-smooth-") as tmp:
        float_path = Path(tmp) / "smoothed.onnx"
        onnx.save(smoothed, str(float_path))
        _quantize(float_path, dest, exclude=outlier_parts)
    outliers = [int(init.dims[0]) for init in smoothed.graph.initializer if init.name.endswith("_outlier_index")]
    return {
        "weights": "int8",
        "per_channel": True,
        "activations": "dynamic",
        "smoothquant_alpha": SMOOTH_ALPHA,
        "calibration_texts": calibration.texts,
        "outlier_ratio": OUTLIER_RATIO,
        "float_channels": sum(outliers),
        "split_groups": len(outliers),
        "quantized_groups": len(groups),
    }


def _quantize(source: Path, dest: Path, exclude: list[str]) -> None:
    """Dynamic per-channel int8 of the model's MatMuls and fused Attentions, except the nodes named in ``exclude``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(source),
            str(dest),
            per_channel=True,
            reduce_range=True,  # see REDUCE_RANGE_WHY
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=sorted(exclude),
            # the fused graph's com.microsoft ops have no ONNX shape inference: their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def fused(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet():
        # heads and hidden size 0: read from the graph's reshapes; opt_level 0: the fusions only,
        # onnxruntime's own optimizations still run when the server loads the model
        try:
            optimizer = optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
        except Exception as error:  # its pattern matching was written for exporters' graphs, not every graph
            raise NotApplicable(
                f"onnxruntime's transformer optimizer failed on this graph ({type(error).__name__}: {error})"
            ) from error
        counts = optimizer.get_fused_operator_statistics()
        if not counts.get("Attention") and not counts.get("MultiHeadAttention"):
            raise NotApplicable("no transformer attention the optimizer recognizes")
        optimizer.save_model_to_file(str(dest))
    return {"fusions": {op: count for op, count in sorted(counts.items()) if count}}


def fused_int8_smooth(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="conveyor-fused-") as tmp:
        fused_path = Path(tmp) / "fused.onnx"
        params = fused(source, fused_path, calibration)
        return {**params, **int8_smooth(fused_path, dest, calibration)}


def graph_optimized(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dest)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return {"graph_optimization_level": "extended"}


METHODS: dict[str, Maker] = {
    "fused-int8-smooth": fused_int8_smooth,
    "int8-smooth": int8_smooth,
    "int8": int8_dynamic,
    "fused": fused,
    "graph": graph_optimized,
}
CALIBRATED = {"int8-smooth", "fused-int8-smooth"}  # the methods that use calibration texts


def make_variant(method: str, source: Path, dest: Path, calibration: Calibration | None = None) -> dict[str, Any]:
    """Write the ``method`` variant of ``source`` to ``dest``; the method's parameters.

    NotApplicable, in one line, when the method fails on this graph (onnxruntime's quantizer refuses a
    tree ensemble's graph, "Failed to find proper ai.onnx domain") or leaves it as it was (nothing to
    quantize in a RandomForest: the same nodes and weights are no variant, whatever a timer says)."""
    if method not in METHODS:
        raise InvalidInput(f"unknown optimization {method!r}; methods: {', '.join(METHODS)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        params = METHODS[method](source, dest, calibration or Calibration())
    except ConveyorError:
        raise
    except Exception as error:  # the converters' and onnxruntime's own errors: a reason, never a traceback
        raise NotApplicable(f"{method} does not apply to this graph ({one_line(error)})") from error
    if _shape(source) == _shape(dest):
        raise NotApplicable(f"the graph did not change ({len(_shape(source)[0])} nodes, the same weights)")
    return params


def _shape(path: Path) -> tuple[list[str], int]:
    """A graph's operators in order and the bytes of its weights: equal for a method that changed nothing."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes = [f"{node.domain}:{node.op_type}" for node in model.graph.node]
    return nodes, sum(init.ByteSize() for init in model.graph.initializer)


def one_line(error: BaseException, limit: int = 200) -> str:
    """The error's first line, cut to ``limit`` characters (a converter's message can be megabytes)."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def calibration_for(folder: Path, texts: list[Any], limit: int = 256) -> Calibration:
    """Calibration inputs from the first ``limit`` of ``texts``, tokenized as the server would."""
    from conveyor.optimize.agreement import TaskModel
    from conveyor.serving.tasks.text import TextServer

    chosen = texts[:limit]
    loaded = TaskModel(folder)
    server = loaded.server
    if not loaded.spec.task.takes_text or not isinstance(server, TextServer) or not server.model.takes_text:
        raise InvalidInput(
            f"calibration needs a text model (a tokenizer next to the ONNX file), not {loaded.spec.task}"
        )
    return Calibration([feeds for _, feeds in server.model.feeds(chosen)], len(chosen))


@contextlib.contextmanager
def _quiet() -> Any:
    """onnxruntime's quantizer logs advice on the root logger and prints; keep the CLI's output clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
