"""Ways to make an ONNX model faster without retraining it, one function per method.

* ``int8``: dynamic quantization of the weights to int8, per channel (``onnxruntime.quantization``);
  activations stay float and are quantized on the fly, so no calibration data is needed.
* ``int8-smooth``: the same after SmoothQuant (``smoothquant.py``), calibrated on texts, with the
  few weight groups whose quantization moves the outputs most (measured one group at a time on
  the calibration texts) kept in float: mixed precision chosen by measured sensitivity.
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

from conveyor.errors import InvalidInput

SMOOTH_ALPHA = 0.8  # how much of an activation's range moves into the weights (0: none, 1: all)
KEEP_FLOAT = 2  # weight groups left in float by int8-smooth, the most sensitive first
SENSITIVITY_TEXTS = 64  # calibration texts each group's sensitivity is measured on


@dataclass
class Calibration:
    """Model inputs for calibration texts (the model's own tokenization), a batch per feed."""

    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)
    texts: int = 0

    def head(self, texts: int) -> list[dict[str, np.ndarray]]:
        """The first feeds covering at least ``texts`` texts."""
        chosen, seen = [], 0
        for feed in self.feeds:
            if seen >= texts:
                break
            chosen.append(feed)
            seen += len(next(iter(feed.values())))
        return chosen


Maker = Callable[[Path, Path, Calibration], dict[str, Any]]  # (source model, destination, calibration) -> parameters


def int8_dynamic(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(dest), per_channel=True, weight_type=QuantType.QInt8)
    return {"weights": "int8", "per_channel": True, "activations": "dynamic"}


def int8_smooth(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    import onnx

    from conveyor.optimize import smoothquant

    if not calibration.feeds:
        raise InvalidInput("int8-smooth needs calibration texts (--calibrate FILE, or evaluation texts)")
    model = onnx.load(str(source))
    smoothquant.name_nodes(model)
    groups = smoothquant.weight_matmul_groups(model)
    ranges = smoothquant.activation_ranges(model, calibration.feeds, groups)
    smoothed = smoothquant.smooth(model, ranges, SMOOTH_ALPHA)
    with tempfile.TemporaryDirectory(prefix="conveyor-smooth-") as tmp:
        float_path = Path(tmp) / "smoothed.onnx"
        onnx.save(smoothed, str(float_path))
        matmuls = [node.name for node in smoothed.graph.node if node.op_type == "MatMul"]
        ranked = _sensitivity(float_path, groups, matmuls, calibration.head(SENSITIVITY_TEXTS), Path(tmp))
        kept = [group for _, group in ranked[:KEEP_FLOAT]]
        _quantize(float_path, dest, exclude=[name for group in kept for name in group.matmuls])
    return {
        "weights": "int8",
        "per_channel": True,
        "activations": "dynamic",
        "smoothquant_alpha": SMOOTH_ALPHA,
        "calibration_texts": calibration.texts,
        "float_groups": [group.activation for group in kept],
        "quantized_matmuls": sum(len(g.matmuls) for g in groups) - sum(len(g.matmuls) for g in kept),
    }


def _quantize(source: Path, dest: Path, exclude: list[str]) -> None:
    """Dynamic per-channel int8 of the model's MatMuls, except the nodes named in ``exclude``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(source),
            str(dest),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=sorted(exclude),
        )


def _sensitivity(
    float_path: Path, groups: list[Any], matmuls: list[str], feeds: list[dict[str, np.ndarray]], tmp: Path
) -> list[tuple[float, Any]]:
    """Groups by how far quantizing that group alone (every other of ``matmuls`` float) moves the outputs."""
    reference = _outputs(float_path, feeds)
    ranked = []
    for index, group in enumerate(groups):
        path = tmp / f"group-{index}.onnx"
        _quantize(float_path, path, exclude=[name for name in matmuls if name not in set(group.matmuls)])
        moved = np.mean([np.abs(a - b).mean() for a, b in zip(_outputs(path, feeds), reference, strict=True)])
        ranked.append((float(moved), group))
        path.unlink()
    return sorted(ranked, key=lambda item: item[0], reverse=True)


def _outputs(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_outputs()[0].name
    return [session.run([first], feed)[0] for feed in feeds]


def graph_optimized(source: Path, dest: Path, calibration: Calibration) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dest)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return {"graph_optimization_level": "extended"}


METHODS: dict[str, Maker] = {"int8": int8_dynamic, "int8-smooth": int8_smooth, "graph": graph_optimized}
CALIBRATED = {"int8-smooth"}  # the methods that use calibration texts


def make_variant(method: str, source: Path, dest: Path, calibration: Calibration | None = None) -> dict[str, Any]:
    """Write the ``method`` variant of ``source`` to ``dest``; the method's parameters."""
    if method not in METHODS:
        raise InvalidInput(f"unknown optimization {method!r}; methods: {', '.join(METHODS)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return METHODS[method](source, dest, calibration or Calibration())


def calibration_for(folder: Path, texts: list[str], limit: int = 256) -> Calibration:
    """Calibration inputs from the first ``limit`` of ``texts``, tokenized as the server would."""
    from conveyor.optimize.agreement import classifier

    chosen = texts[:limit]
    model = classifier(folder)
    if not model.takes_text:
        raise InvalidInput("calibration needs a text model (a tokenizer next to the ONNX file)")
    return Calibration([feeds for _, feeds in model.feeds(chosen)], len(chosen))


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
