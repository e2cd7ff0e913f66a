"""SmoothQuant for onnxruntime's dynamic int8: move activation outliers into the weights first.

Dynamic quantization gives each activation tensor one int8 scale, so a few channels with large
values (transformers have them after LayerNorm and GELU) leave the other channels a handful of
levels; on the reference model that alone flips 2.4% of held-out labels. SmoothQuant (Xiao et
al., 2022, arXiv:2211.10438) rescales each input channel ``j`` of a weight MatMul by
``s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)``: ``X @ W == (X / s) @ (s * W)``, exact in
float, but with the outliers shrunk before quantization and the weights (quantized per channel)
absorbing them. Here the ``1 / s`` is an explicit ``Mul`` before each group of MatMuls sharing an
input, so nothing has to be folded into a LayerNorm whose output also feeds a residual.

Smoothing alone leaves the largest outliers (a channel at 28 where the median is 2): those few
input channels are split off instead (``outlier_channels``), zeroed in the int8 MatMul's input
and multiplied in float by their rows of the weight, as LLM.int8() does.

The ranges come from calibration texts run through the float model (the training split, not the
texts the agreement gate compares on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SMOOTHED = "_smoothed"
OUTLIER = "_outlier"  # the float MatMuls of split-off outlier channels
# ops computing ``input[0] @ input[1]`` (+ bias) with a 2-D weight: MatMul, and the fused
# multi-head Attention of onnxruntime's transformer optimizer (Q, K and V weights side by side)
WEIGHT_OPS = ("MatMul", "Attention")


@dataclass
class Group:
    """Weight MatMuls reading the same activation: they share one smoothing factor."""

    activation: str
    matmuls: list[str]  # node names


def weight_matmul_groups(model: onnx.ModelProto) -> list[Group]:
    """MatMuls whose second input is a 2-D initializer (a weight), grouped by their first input."""
    weights = {init.name for init in model.graph.initializer if len(init.dims) == 2}
    groups: dict[str, Group] = {}
    for node in model.graph.node:
        if node.op_type in WEIGHT_OPS and node.input[1] in weights:
            groups.setdefault(node.input[0], Group(node.input[0], [])).matmuls.append(node.name)
    return list(groups.values())


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name, so nodes can be chosen for (or kept from) quantization."""
    taken = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def activation_ranges(
    model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], groups: list[Group]
) -> dict[str, np.ndarray]:
    """Each group's activation: the largest absolute value per channel over all ``feeds``."""
    import onnxruntime as ort

    from conveyor.serving.runtime import quiet_session_options

    if not groups:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for group in groups:
        probe.graph.output.append(helper.make_tensor_value_info(group.activation, TensorProto.FLOAT, None))
    session = ort.InferenceSession(
        probe.SerializeToString(), quiet_session_options(), providers=["CPUExecutionProvider"]
    )
    names = [group.activation for group in groups]
    ranges: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed), strict=True):
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            ranges[name] = np.maximum(ranges[name], peak) if name in ranges else peak
    return ranges


def outlier_channels(peak: np.ndarray, ratio: float, most: int) -> np.ndarray:
    """The channels whose calibration peak exceeds ``ratio`` times the group's median peak, at most ``most``."""
    if ratio <= 0 or most <= 0:
        return np.zeros(0, np.int64)
    order = np.argsort(peak)[::-1][:most]
    return np.sort(order[peak[order] > ratio * np.median(peak)]).astype(np.int64)


def smooth(
    model: onnx.ModelProto,
    ranges: dict[str, np.ndarray],
    alpha: float,
    outlier_ratio: float = 0.0,
    max_outliers: int = 0,
) -> onnx.ModelProto:
    """A copy of ``model`` with every weight group smoothed; in float it computes the same function.

    With ``outlier_ratio``, a MatMul group's few outlier channels (``outlier_channels``) are split
    off first: ``X @ W == X_in @ W_in + X_out @ W_out``, the outlier part a small float MatMul
    (named ``*_outlier``, never quantized) added to the output, the rest smoothed and quantized
    without them, as LLM.int8() does (Dettmers et al., 2022, arXiv:2208.07339).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    initializers = {init.name: init for init in out.graph.initializer}
    groups = weight_matmul_groups(out)
    by_name = {node.name: node for node in out.graph.node}
    added: list[onnx.NodeProto] = []
    for group in groups:
        nodes = [by_name[name] for name in group.matmuls]
        weights = [numpy_helper.to_array(initializers[node.input[1]]) for node in nodes]
        weight_peak = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        peak = np.clip(ranges[group.activation], 1e-5, None)
        split = all(node.op_type == "MatMul" for node in nodes)
        outliers = outlier_channels(peak, outlier_ratio, max_outliers) if split else np.zeros(0, np.int64)
        factor = peak**alpha / np.clip(weight_peak, 1e-5, None) ** (1 - alpha)
        factor = np.clip(factor, 1e-5, None).astype(np.float32)
        inverse_factor = (1.0 / factor).astype(np.float32)
        inverse_factor[outliers] = 0.0  # the outlier channels reach the int8 MatMul as zeros
        inverse = numpy_helper.from_array(inverse_factor, group.activation + "_smooth_inverse")
        out.graph.initializer.append(inverse)
        added.append(
            helper.make_node(
                "Mul",
                [group.activation, inverse.name],
                [group.activation + SMOOTHED],
                name=group.activation + "_smooth",
            )
        )
        if len(outliers):
            index = numpy_helper.from_array(outliers, group.activation + "_outlier_index")
            out.graph.initializer.append(index)
            picked = group.activation + "_outliers"
            added.append(
                helper.make_node("Gather", [group.activation, index.name], [picked], name=picked + "_gather", axis=-1)
            )
        for node, weight in zip(nodes, weights, strict=True):
            smoothed = weight * factor[:, None]
            if len(outliers):
                part = numpy_helper.from_array(weight[outliers].astype(np.float32), node.input[1] + "_outlier_rows")
                out.graph.initializer.append(part)
                smoothed[outliers] = 0.0
                inlier_out = node.output[0] + "_inliers"
                outlier_out = node.output[0] + "_outliers"
                added.append(helper.make_node("MatMul", [picked, part.name], [outlier_out], name=node.name + OUTLIER))
                added.append(
                    helper.make_node("Add", [inlier_out, outlier_out], [node.output[0]], name=node.name + "_rejoin")
                )
                node.output[0] = inlier_out
            initializers[node.input[1]].CopyFrom(numpy_helper.from_array(smoothed.astype(np.float32), node.input[1]))
            node.input[0] = group.activation + SMOOTHED
    nodes = _topological(
        [*out.graph.node, *added],
        {i.name for i in out.graph.input} | set(initializers) | {i.name for i in out.graph.initializer},
    )
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _topological(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` in an order where each comes after the nodes making its inputs (stable otherwise)."""
    ready = set(available) | {""}
    pending = list(nodes)
    ordered: list[onnx.NodeProto] = []
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input at {waiting[0].name}")
        pending = waiting
    return ordered
