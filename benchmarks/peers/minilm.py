"""The MiniLM sentiment model as a peer server's user would load it: Rust tokenizer and onnxruntime.

Shared by the MLServer runtime and the BentoML service (each imports it from its own virtual
environment; nothing of Conveyor is imported).  Tokenizing and session options are Conveyor's own
(truncation to the model's ``max_length``, padding per batch with an attention mask, 2 intra-op threads
without spinning), so the servers are compared, not onnxruntime settings.  The model folder, its
labels and its ``max_length`` come from the environment the benchmark starts the peer with.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

#: what the benchmark passes to a peer
MODEL_DIR, LABELS, MAX_LENGTH = "PEER_MODEL_DIR", "PEER_LABELS", "PEER_MAX_LENGTH"


class MiniLM:
    """Texts in, label names out, one onnxruntime call per batch."""

    def __init__(self) -> None:
        folder = Path(os.environ[MODEL_DIR])
        self.labels = os.environ[LABELS].split(",")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(os.environ[MAX_LENGTH]))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def classify(self, texts: list[str]) -> list[str]:
        encoded = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
        return [self.labels[int(i)] for i in logits.argmax(axis=1)]
