"""A skl2onnx graph that computes in double as scikit-learn does, and that onnxruntime can run.

The gate asks for double where float32 changes a model's answers.  skl2onnx's double graph needs
three repairs before it both loads and answers as scikit-learn:

* **Split thresholds.** skl2onnx writes every TreeEnsemble threshold as a float32 attribute
  (``nodes_values``), even where the graph computes in double.  scikit-learn compares
  ``x <= threshold`` in double, and a threshold often sits within a float32 step of the data it
  was learned from: HistGradientBoosting bins at the training values themselves, so a training
  row (what users pass as ``--sample``) lands one float64 step above a threshold, float32 rounds
  both to the same number and sends the row down the other branch.  One flipped split moved a
  small HGB pipeline's probabilities by 0.02 in float32 and in double alike.

  ai.onnx.ml's TreeEnsemble operators (opset 3) take the thresholds as a double tensor
  (``nodes_values_as_tensor``), which onnxruntime compares in double.  The exact values are the
  estimator's own (``tree_.threshold``, HistGradientBoosting's ``num_threshold``); each float32
  attribute value is replaced by the one double threshold of the model that rounds to it.  A value
  no threshold (or more than one distinct threshold) rounds to is kept as it was.
* **Tree outputs.** onnxruntime's TreeEnsembleClassifier and TreeEnsembleRegressor take double
  inputs but produce float32 only, where skl2onnx declares double: their outputs are cast to double.
* **Imputers.** onnxruntime has no double kernel for ai.onnx.ml's Imputer (a SimpleImputer): it
  becomes ``Where(IsNaN(x), values, x)`` of standard operators, which compute in any type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# the attributes that hold the fitted parts of the estimators scikit-learn composes
_PARTS = (
    "steps",
    "transformers_",
    "estimators_",
    "estimator_",
    "final_estimator_",
    "calibrated_classifiers_",
    "_predictors",
)
TREE_OPSET = 3  # ai.onnx.ml's first opset with nodes_values_as_tensor


def model_doubles(model: Any) -> dict[float, float]:
    """Each float32 value skl2onnx writes for ``model`` (split thresholds, imputed values) -> the double
    that scikit-learn uses, where exactly one of the model's doubles rounds to it."""
    found: list[float] = []
    seen: set[int] = set()

    def visit(part: Any) -> None:
        if id(part) in seen or part is None or isinstance(part, str | bytes | int | float):
            return
        seen.add(id(part))
        if isinstance(part, dict):
            part = list(part.values())
        if isinstance(part, tuple) and len(part) >= 2 and isinstance(part[0], str):
            part = part[1:]  # a Pipeline's ("name", estimator) step
        if isinstance(part, list | tuple) or (isinstance(part, np.ndarray) and part.dtype == object):
            for each in np.asarray(part, dtype=object).ravel() if isinstance(part, np.ndarray) else part:
                visit(each)
            return
        tree = getattr(part, "tree_", None)
        if tree is not None and hasattr(tree, "threshold"):
            found.extend(np.asarray(tree.threshold, dtype=np.float64).tolist())
        statistics = getattr(part, "statistics_", None)  # a SimpleImputer's values
        if isinstance(statistics, np.ndarray) and statistics.dtype.kind == "f":
            found.extend(statistics.astype(np.float64).tolist())
        nodes = getattr(part, "nodes", None)  # a HistGradientBoosting predictor
        if isinstance(nodes, np.ndarray) and nodes.dtype.names and "num_threshold" in nodes.dtype.names:
            found.extend(nodes["num_threshold"].astype(np.float64).tolist())
        for name in _PARTS:
            visit(getattr(part, name, None))

    visit(model)
    rounding: dict[float, set[float]] = {}
    for value in found:
        rounding.setdefault(float(np.float32(value)), set()).add(value)
    return {rounded: next(iter(doubles)) for rounded, doubles in rounding.items() if len(doubles) == 1}


def _exact(values: Iterable[float], doubles: dict[float, float]) -> list[float]:
    return [doubles.get(float(np.float32(value)), float(value)) for value in values]


def exact_thresholds(proto: Any, doubles: dict[float, float]) -> Any:
    """``proto``'s TreeEnsemble nodes given their double thresholds (``nodes_values_as_tensor``)."""
    from onnx import helper, numpy_helper

    if not doubles:
        return proto
    changed = False
    for node in proto.graph.node:
        if node.domain != "ai.onnx.ml" or not node.op_type.startswith("TreeEnsemble"):
            continue
        for index, attribute in enumerate(node.attribute):
            if attribute.name != "nodes_values":
                continue
            tensor = numpy_helper.from_array(np.asarray(_exact(attribute.floats, doubles), dtype=np.float64))
            del node.attribute[index]
            node.attribute.append(helper.make_attribute("nodes_values_as_tensor", tensor))
            changed = True
            break
    if changed:
        for opset in proto.opset_import:
            if opset.domain == "ai.onnx.ml":
                opset.version = max(opset.version, TREE_OPSET)
    return proto


def float_tree_outputs(proto: Any) -> Any:
    """A TreeEnsemble node's double outputs made float32, each cast back to double for the nodes after it."""
    from onnx import TensorProto, helper

    graph = proto.graph
    declared = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]}
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if node.domain != "ai.onnx.ml" or not node.op_type.startswith("TreeEnsemble"):
            continue
        for index, name in enumerate(list(node.output)):
            if declared.get(name) != TensorProto.DOUBLE:
                continue
            node.output[index] = f"{name}_float32"
            nodes.append(
                helper.make_node("Cast", [f"{name}_float32"], [name], to=TensorProto.DOUBLE, name=f"{name}_cast")
            )
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


def standard_imputers(proto: Any, doubles: dict[float, float]) -> Any:
    """Each ai.onnx.ml Imputer node as ``Where(<x is missing>, values, x)``, which runs in double, its
    values the imputer's own doubles (a median often is a training value, and so a split threshold)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    nodes = []
    for node in graph.node:
        if node.domain != "ai.onnx.ml" or node.op_type != "Imputer":
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        values = attributes.get("imputed_value_floats")
        if not values:  # an integer imputer: onnxruntime runs it as it is
            nodes.append(node)
            continue
        replaced = float(attributes.get("replaced_value_float", 0.0))
        (source,), (target,) = node.input, node.output
        prefix = f"{node.name or target}_double"
        exact = np.asarray(_exact(values, doubles), dtype=np.float64)
        graph.initializer.append(numpy_helper.from_array(exact, f"{prefix}_values"))
        if np.isnan(replaced):
            nodes.append(helper.make_node("IsNaN", [source], [f"{prefix}_missing"], name=f"{prefix}_isnan"))
        else:
            marker = numpy_helper.from_array(np.asarray(replaced, dtype=np.float64), f"{prefix}_marker")
            graph.initializer.append(marker)
            nodes.append(
                helper.make_node("Equal", [source, f"{prefix}_marker"], [f"{prefix}_missing"], name=f"{prefix}_equal")
            )
        nodes.append(
            helper.make_node("Where", [f"{prefix}_missing", f"{prefix}_values", source], [target], name=prefix)
        )
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


def to_double(proto: Any, model: Any) -> Any:
    """skl2onnx's double graph of ``model`` made to run on onnxruntime and answer as scikit-learn does."""
    doubles = model_doubles(model)
    return standard_imputers(float_tree_outputs(exact_thresholds(proto, doubles)), doubles)
