"""Train: embed the texts with the frozen MiniLM encoder and fit a logistic-regression head."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from conveyor.serving.runtime import quiet_session_options
from examples.sentiment import encoder
from examples.sentiment.cache import cached, files_digest
from examples.sentiment.transformer_onnx import embedding_model

MAX_LENGTH = 128
BATCH = 64


@dataclass(frozen=True)
class Head:
    """A linear head ``[num_labels, hidden]`` + bias, in logit form."""

    weight: np.ndarray
    bias: np.ndarray
    train_accuracy: float
    seconds: float


def _tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(encoder.tokenizer_path()))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    return tokenizer


def _cache_key(texts: list[str]) -> str:
    """What the embeddings depend on: the texts, the encoder's files and the code that runs them."""
    digest = hashlib.sha256(json.dumps(texts).encode())
    return files_digest(digest, [*Path(__file__).parent.glob("*.py"), *encoder.model_dir().glob("*")]).hexdigest()


def _npy_bytes(features: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, features)
    return buffer.getvalue()


def embed(texts: list[str], threads: int | None = None) -> np.ndarray:
    """Sentence embeddings (mean-pooled, L2-normalised), cached by their inputs (examples/sentiment/cache.py).

    Embedding is nearly all of a training's time and does not depend on the head being fitted,
    so ``make model``, the training pipeline and a retrain with other head settings share it.
    """
    return cached(
        f"{_cache_key(texts)}.npy",
        lambda: _embed(texts, threads),
        _npy_bytes,
        lambda data: np.load(io.BytesIO(data)),
    )


def _embed(texts: list[str], threads: int | None = None) -> np.ndarray:
    """Sentence embeddings (mean-pooled, L2-normalised), batched by length."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embedder.onnx"
        onnx.save(embedding_model(encoder.weights(), encoder.config()), path)
        # no busy-waiting between batches: on a shared machine (a pipeline's parallel steps, a CI
        # runner) spinning threads burn about a quarter more CPU for the same embeddings
        options = quiet_session_options()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    encodings = _tokenizer().encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    out = np.zeros((len(texts), encoder.config().hidden_size), dtype=np.float32)
    for start in range(0, len(order), BATCH):
        rows = order[start : start + BATCH]
        width = max(len(encodings[i].ids) for i in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(rows):
            n = len(encodings[i].ids)
            ids[r, :n] = encodings[i].ids
            mask[r, :n] = 1
        out[rows] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    return out


def train(texts: list[str], labels: list[int], c: float = 1.0, seed: int = 42) -> Head:
    """Fit the head.  Two logits ``[-z/2, z/2]`` give the same softmax as the binary model."""
    from sklearn.linear_model import LogisticRegression

    started = time.monotonic()
    features = embed(texts)
    y = np.asarray(labels)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features, y)
    w = clf.coef_[0].astype(np.float32)
    b = np.float32(clf.intercept_[0])
    weight = np.stack([-w / 2, w / 2])
    bias = np.array([-b / 2, b / 2], dtype=np.float32)
    return Head(weight, bias, float(clf.score(features, y)), time.monotonic() - started)
