"""Does a variant answer like the original?  Labels compared text by text, probabilities too.

The gate before a variant is registered: both models classify the same evaluation texts; the
share of equal predicted labels must reach the threshold (default 99%), and the largest
difference of any class probability is reported beside it.  The texts that disagree are kept,
so a refusal can show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BATCH = 32


@dataclass
class Agreement:
    compared: int
    agreed: int
    max_probability_diff: float
    disagreements: list[dict[str, str]] = field(default_factory=list)  # text, original label, variant label

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def classifier(folder: Path):  # type: ignore[no-untyped-def]
    """A text classifier for a version's folder, as the server loads it (model.yaml, or a bare .onnx)."""
    from conveyor.serving.model import TextClassifier
    from conveyor.serving.runtime import RuntimeOptions
    from conveyor.serving.spec import locate_model, resolve_model

    return TextClassifier(resolve_model(*locate_model(folder)), RuntimeOptions())


def probabilities(folder: Path, texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """(class probabilities [n, classes], label names) of the model in ``folder``."""
    model = classifier(folder)
    rows = [model.classify(texts[start : start + BATCH]) for start in range(0, len(texts), BATCH)]
    return _softmax(np.concatenate(rows).astype(np.float64)), list(model.spec.labels)


def compare(
    original: Path,
    variant: Path,
    texts: list[str],
    keep: int = 20,
    reference: tuple[np.ndarray, list[str]] | None = None,
) -> Agreement:
    """Classify ``texts`` with both models; at most ``keep`` disagreeing texts are kept.

    ``reference``: the original's ``probabilities`` on ``texts``, when several variants are compared.
    """
    before, labels = reference or probabilities(original, texts)
    after, _ = probabilities(variant, texts)
    chosen_before, chosen_after = before.argmax(axis=1), after.argmax(axis=1)
    differ = np.flatnonzero(chosen_before != chosen_after)
    return Agreement(
        compared=len(texts),
        agreed=len(texts) - len(differ),
        max_probability_diff=float(np.abs(before - after).max()) if len(texts) else 0.0,
        disagreements=[
            {"text": texts[i], "original": labels[chosen_before[i]], "variant": labels[chosen_after[i]]}
            for i in differ[:keep]
        ],
    )
