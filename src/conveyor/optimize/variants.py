"""Ways to make an ONNX model faster without retraining it, one function per method.

* ``int8``: dynamic quantization of the weights to int8, per channel (``onnxruntime.quantization``);
  activations stay float and are quantized on the fly, so no calibration data is needed.
* ``graph``: onnxruntime's extended graph optimizations (constant folding, fusions), done
  offline and saved, so a server loads the optimized graph instead of optimizing at start-up.

Which one is faster depends on the model and the machine: ``run.optimize`` measures instead of
assuming.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput

Maker = Callable[[Path, Path], dict[str, Any]]  # (source model.onnx, destination) -> its parameters


def int8_dynamic(source: Path, dest: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(dest), per_channel=True, weight_type=QuantType.QInt8)
    return {"weights": "int8", "per_channel": True, "activations": "dynamic"}


def graph_optimized(source: Path, dest: Path) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dest)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return {"graph_optimization_level": "extended"}


METHODS: dict[str, Maker] = {"int8": int8_dynamic, "graph": graph_optimized}


def make_variant(method: str, source: Path, dest: Path) -> dict[str, Any]:
    """Write the ``method`` variant of ``source`` to ``dest``; the method's parameters."""
    if method not in METHODS:
        raise InvalidInput(f"unknown optimization {method!r}; methods: {', '.join(METHODS)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return METHODS[method](source, dest)


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
