"""Evaluate: accuracy of the exported model, end to end, against the VADER lexicon baseline.

The result is a pure function of the model's files, the split and the code that scores them,
so it is cached by their digest (examples/sentiment/cache.py): a pipeline run again with the
same trained model, or a build beside it, reads the numbers instead of scoring thousands of
texts again.  The quality gate that judges them always runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import conveyor.serving
from conveyor.serving.model import TextClassifier
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import resolve_model
from examples.sentiment.cache import cached, files_digest
from examples.sentiment.data import Split


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    vader_accuracy: float
    majority_accuracy: float
    test_size: int

    def as_dict(self) -> dict[str, float]:
        return {
            "accuracy": round(self.accuracy, 4),
            "vader_lexicon_accuracy": round(self.vader_accuracy, 4),
            "majority_class_accuracy": round(self.majority_accuracy, 4),
            "test_size": self.test_size,
        }


def model_accuracy(model_dir: Path, split: Split) -> float:
    """Run the exported directory through the same code path the server uses."""
    classifier = TextClassifier(resolve_model(model_dir), RuntimeOptions(), max_run=64)
    predictions = []
    for start in range(0, len(split.texts), 256):
        logits = classifier.classify(split.texts[start : start + 256])
        predictions.extend(logits.argmax(axis=1).tolist())
    return float(np.mean(np.asarray(predictions) == np.asarray(split.labels)))


def vader_accuracy(vader_source: Path, split: Split) -> float:
    """VADER's own lexicon (from the same sdist): compound score > 0 means positive."""
    module_path = vader_source / "vaderSentiment" / "vaderSentiment.py"
    spec = importlib.util.spec_from_file_location("vader_lexicon_baseline", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    analyzer = module.SentimentIntensityAnalyzer()
    predictions = [int(analyzer.polarity_scores(t)["compound"] > 0) for t in split.texts]
    return float(np.mean(np.asarray(predictions) == np.asarray(split.labels)))


# written beside the model after its evaluation: not part of what is evaluated
_RESULT_FILES = {"metrics.json", "build.json"}


def _evaluation_key(model_dir: Path, split: Split, vader_source: Path) -> str:
    digest = hashlib.sha256(json.dumps([split.texts, split.labels]).encode())
    files_digest(digest, [p for p in model_dir.iterdir() if p.name not in _RESULT_FILES])
    files_digest(digest, [vader_source / "vaderSentiment" / "vaderSentiment.py", Path(__file__)])
    files_digest(digest, Path(conveyor.serving.__file__).parent.glob("*.py"))
    return digest.hexdigest()


def _score(model_dir: Path, split: Split, vader_source: Path) -> Evaluation:
    labels = np.asarray(split.labels)
    majority = float(max(labels.mean(), 1 - labels.mean()))
    return Evaluation(model_accuracy(model_dir, split), vader_accuracy(vader_source, split), majority, len(labels))


def evaluate(model_dir: Path, split: Split, vader_source: Path) -> Evaluation:
    """The model's and VADER's accuracy on ``split`` (cached by everything they depend on)."""
    return cached(
        f"evaluation-{_evaluation_key(model_dir, split, vader_source)}.json",
        lambda: _score(model_dir, split, vader_source),
        lambda result: json.dumps(dataclasses.asdict(result)).encode(),
        lambda data: Evaluation(**json.loads(data)),
    )
