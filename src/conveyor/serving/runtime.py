"""onnxruntime sessions with explicit threads and execution providers."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from conveyor.errors import BadRequest, ModelLoadError

log = logging.getLogger(__name__)

# ONNX tensor element types (as onnxruntime names them) -> numpy dtypes.
ORT_TYPES: dict[str, np.dtype] = {
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(string)": np.dtype(object),
}


@dataclass(frozen=True)
class TensorInfo:
    """Name, numpy dtype and shape (None for a dynamic dimension) of a graph input or output."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run a session.

    ``intra_op_threads`` defaults to the cores this process may use divided by
    the number of server workers, so several workers never oversubscribe the
    machine.
    """

    device: str = "cpu"
    intra_op_threads: int | None = None
    inter_op_threads: int = 1
    workers: int = 1

    def resolved_intra_op_threads(self) -> int:
        if self.intra_op_threads:
            return self.intra_op_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cores // max(1, self.workers))


def _providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModelLoadError(
                f"--device cuda needs onnxruntime-gpu and a CUDA GPU; this onnxruntime offers {', '.join(available)}"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ModelLoadError(f"unknown device {device!r}: use cpu or cuda")


def quiet_session_options() -> ort.SessionOptions:
    """Options for every session Conveyor runs: warnings off (shape-merge warnings from graph fusion
    are noise) and no busy-waiting (spinning threads burn the cores that the event loop, the
    tokenizer, or a pipeline's other steps need between batches)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxSession:
    """One onnxruntime session; ``run`` is thread-safe and releases the GIL."""

    def __init__(self, model_path: Path, options: RuntimeOptions) -> None:
        so = quiet_session_options()
        so.intra_op_num_threads = options.resolved_intra_op_threads()
        so.inter_op_num_threads = options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=so, providers=_providers(options.device))
        except ModelLoadError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{model_path}: onnxruntime cannot load it: {exc}") from exc
        self.providers = self._session.get_providers()
        self.intra_op_threads = so.intra_op_num_threads
        self.inputs = [_info(i) for i in self._session.get_inputs()]
        self.outputs = [_info(o) for o in self._session.get_outputs()]
        meta = self._session.get_modelmeta()
        self.producer = meta.producer_name
        log.info(
            "loaded %s on %s with %d intra-op threads",
            model_path.name,
            ",".join(self.providers),
            self.intra_op_threads,
        )

    def input(self, name: str) -> TensorInfo:
        for info in self.inputs:
            if info.name == name:
                return info
        raise KeyError(name)

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        names = outputs or [o.name for o in self.outputs]
        try:
            values = self._session.run(names, feeds)
        except ort.capi.onnxruntime_pybind11_state.InvalidArgument as exc:
            raise BadRequest(f"the model rejected the input tensors: {_short(exc)}") from exc
        return dict(zip(names, values, strict=True))


def _info(node: ort.NodeArg) -> TensorInfo:
    dtype = ORT_TYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(f"unsupported tensor type {node.type} for {node.name}")
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return TensorInfo(node.name, dtype, shape)


GraphFailed = ort.capi.onnxruntime_pybind11_state.Fail  # a node failed on the values given (not their shapes)


def short_reason(exc: Exception) -> str:
    """onnxruntime's reason, without its prefix of status codes and node names."""
    return _short(exc)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text.split("Status Message: ")[-1][:300]
