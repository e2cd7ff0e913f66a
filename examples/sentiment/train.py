"""Train: embed the texts with the frozen MiniLM encoder and fit a logistic-regression head."""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conveyor import minilm as encoder
from examples.sentiment.cache import cached, files_digest

MAX_LENGTH = encoder.MAX_LENGTH
#: the library code that computes the embeddings: a change to it is a change to them
ENCODER_CODE = [Path(encoder.__file__), Path(encoder.__file__).with_name("transformer_onnx.py")]


@dataclass(frozen=True)
class Head:
    """A linear head ``[num_labels, hidden]`` + bias, in logit form."""

    weight: np.ndarray
    bias: np.ndarray
    train_accuracy: float
    seconds: float


def _cache_key(texts: list[str]) -> str:
    """What the embeddings depend on: the texts, the encoder's files and the code that runs them."""
    digest = hashlib.sha256(json.dumps(texts).encode())
    code = [*Path(__file__).parent.glob("*.py"), *ENCODER_CODE]
    return files_digest(digest, [*code, *encoder.model_dir().glob("*")]).hexdigest()


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
    """Sentence embeddings (mean-pooled, L2-normalised), batched by length (conveyor/minilm.py)."""
    return encoder.SentenceEncoder(threads).embed(texts)


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
