"""Does a variant answer like the original?  Each input compared, in the language of the model's task.

The gate before a variant is registered: both models answer the same evaluation inputs, loaded
and parsed exactly as the server does it (``serving.tasks``), so texts, tabular records and
base64 images are all compared the same way.  A classifier's predicted labels must agree on the
threshold's share of inputs (default 99%), with the largest difference of any class probability
reported beside it; a regressor's value agrees when it is within ``VALUE_TOLERANCE`` (relative)
of the original's, the largest relative difference reported instead.  The inputs that disagree
are kept, so a refusal can show them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from conveyor.serving.model import softmax

BATCH = 32
VALUE_TOLERANCE = 1e-3


@dataclass
class Agreement:
    compared: int
    agreed: int
    max_probability_diff: float  # a regressor: the largest relative difference of its values
    disagreements: list[dict[str, Any]] = field(default_factory=list)  # input, original answer, variant answer
    regression: bool = False

    @property
    def difference_name(self) -> str:
        """What ``max_probability_diff`` holds, as a version's metric is named."""
        return "max_relative_diff" if self.regression else "max_probability_diff"

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


class TaskModel:
    """A version's folder loaded as the server loads it (model.yaml, or a bare .onnx), for in-process calls."""

    def __init__(self, folder: Path) -> None:
        from conveyor.serving.dataplane import ServingOptions
        from conveyor.serving.spec import locate_model, resolve_model
        from conveyor.serving.tasks import server_for

        resolved = resolve_model(*locate_model(folder))
        self.spec = resolved.spec
        self.server = server_for(resolved, ServingOptions(max_items=10**9))
        self.server.load()

    @property
    def regressor(self) -> bool:
        return not self.server.classifier

    def items(self, inputs: list[Any]) -> list[Any]:
        """Raw JSON inputs (texts, records, base64 images) as the task's checked items."""
        return self.server.parse_predict(orjson.dumps(inputs), "application/json")

    def scores(self, items: list[Any]) -> np.ndarray:
        rows = [self.server.score(items[start : start + BATCH]) for start in range(0, len(items), BATCH)]
        return np.concatenate(rows).astype(np.float64)

    def probabilities(self, items: list[Any]) -> np.ndarray:
        """Class probabilities [n, classes] (a text model's logits through softmax), or a regressor's values [n, 1]."""
        scores = self.scores(items)
        return softmax(scores) if self.spec.task.takes_text else scores


def probabilities(folder: Path, inputs: list[Any]) -> tuple[np.ndarray, list[str]]:
    """(probabilities or values of the model in ``folder`` on ``inputs``, its label names)."""
    model = TaskModel(folder)
    return model.probabilities(model.items(inputs)), list(model.spec.labels)


def _shown(value: Any) -> Any:
    return value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."


def compare(
    original: Path,
    variant: Path,
    inputs: list[Any],
    keep: int = 20,
    reference: tuple[np.ndarray, list[str]] | None = None,
) -> Agreement:
    """Answer ``inputs`` with both models; at most ``keep`` disagreeing inputs are kept.

    ``reference``: the original's ``probabilities`` on ``inputs``, when several variants are compared.
    """
    before, labels = reference or probabilities(original, inputs)
    after, _ = probabilities(variant, inputs)
    if not labels:  # a regressor: values within the tolerance
        relative = np.abs(before[:, 0] - after[:, 0]) / np.maximum(np.abs(before[:, 0]), 1e-12)
        close = [math.isclose(a, b, rel_tol=VALUE_TOLERANCE) for a, b in zip(before[:, 0], after[:, 0], strict=True)]
        differ = np.flatnonzero(~np.array(close, dtype=bool))
        shown = [(float(before[i, 0]), float(after[i, 0])) for i in differ[:keep]]
        largest = float(relative.max()) if len(inputs) else 0.0
    else:
        chosen_before, chosen_after = before.argmax(axis=1), after.argmax(axis=1)
        differ = np.flatnonzero(chosen_before != chosen_after)
        shown = [(labels[chosen_before[i]], labels[chosen_after[i]]) for i in differ[:keep]]
        largest = float(np.abs(before - after).max()) if len(inputs) else 0.0
    return Agreement(
        compared=len(inputs),
        agreed=len(inputs) - len(differ),
        max_probability_diff=largest,
        regression=not labels,
        disagreements=[
            {"input": _shown(inputs[i]), "original": a, "variant": b} for i, (a, b) in zip(differ, shown, strict=False)
        ],
    )
