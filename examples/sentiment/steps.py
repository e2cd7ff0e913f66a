"""The training pipeline's steps (see conveyor.yaml): prepare -> train -> evaluate -> register.

Each is a small function of a StepContext, run in its own process by `conveyor pipeline run`;
files pass between them through the run's artifacts folder, values through outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.pipeline.context import StepContext, StepFailed
from examples.sentiment.data import Split


def _save_split(path: Path, split: Split) -> None:
    path.write_text(json.dumps({"texts": split.texts, "labels": split.labels}))


def _load_split(path: Path) -> Split:
    data = json.loads(Path(path).read_text())
    return Split(data["texts"], data["labels"])


def prepare(ctx: StepContext) -> dict[str, Any]:
    """Fetch VADER's ground truth and write the stratified train/test split."""
    from examples.sentiment.data import prepare as prepare_data

    data = prepare_data(ctx.project / ctx.arg("data_dir", "data"))
    out = ctx.artifacts / "data"
    out.mkdir(parents=True, exist_ok=True)
    _save_split(out / "train.json", data.train)
    _save_split(out / "test.json", data.test)
    print(f"{len(data.train.texts)} train / {len(data.test.texts)} test snippets, data sha256:{data.digest[:12]}")
    return {
        "train": str(out / "train.json"),
        "test": str(out / "test.json"),
        "data_digest": data.digest,
        "vader_source": str(data.vader_source),
    }


def train(ctx: StepContext) -> dict[str, Any]:
    """Embed with MiniLM, fit the logistic-regression head, export the one-graph ONNX model folder."""
    from examples.sentiment.export import export
    from examples.sentiment.train import train as fit

    split = _load_split(ctx.arg("train", required=True))
    head = fit(split.texts, split.labels)
    model_dir = export(head, ctx.artifacts / "model", name=ctx.params.get("model_name", "sentiment"))
    np.savez(ctx.artifacts / "head.npz", weight=head.weight, bias=head.bias)
    print(f"trained in {head.seconds:.0f}s, train accuracy {head.train_accuracy:.4f}; model in {model_dir}")
    return {"model": str(model_dir), "train_accuracy": round(head.train_accuracy, 4)}


def production_accuracy(name: str) -> float | None:
    """The accuracy recorded for NAME@production, if there is such a version with that metric."""
    from conveyor.errors import ClientError
    from conveyor.registry.config import open_registry

    try:
        version = open_registry().resolve(f"{name}@production")
    except ClientError as exc:
        if exc.status == 404:
            return None
        raise
    return version.lineage.metrics.get("accuracy")


def evaluate(ctx: StepContext) -> dict[str, Any]:
    """The quality gate: accuracy >= the threshold, above VADER's lexicon, not below @production."""
    from examples.sentiment.evaluate import evaluate as run_evaluation

    result = run_evaluation(
        Path(ctx.arg("model", required=True)),
        _load_split(ctx.arg("test", required=True)),
        Path(ctx.arg("vader_source", required=True)),
    )
    (Path(ctx.arg("model")) / "metrics.json").write_text(json.dumps(result.as_dict(), indent=2))
    threshold = float(ctx.params.get("accuracy_threshold", 0.75))
    production = production_accuracy(ctx.params.get("model_name", "sentiment"))
    print(
        f"accuracy {result.accuracy:.4f}, VADER lexicon {result.vader_accuracy:.4f}, "
        f"threshold {threshold}, @production {production if production is not None else 'none'}"
    )
    problems = []
    if result.accuracy < threshold:
        problems.append(f"accuracy {result.accuracy:.4f} is below the threshold {threshold}")
    if result.accuracy <= result.vader_accuracy:
        problems.append(f"accuracy {result.accuracy:.4f} does not beat VADER's {result.vader_accuracy:.4f}")
    if production is not None and result.accuracy < production:
        problems.append(f"accuracy {result.accuracy:.4f} is below @production's {production:.4f}")
    if problems:
        raise StepFailed("quality gate: " + "; ".join(problems))
    return {"accuracy": round(result.accuracy, 4), "vader_accuracy": round(result.vader_accuracy, 4), "passed": True}
