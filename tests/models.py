"""Small ONNX models and tokenizers built for the tests with onnx.helper.

Each model's answer can be computed independently in the test from the words
of the text, so assertions check real predictions, not recorded ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from conveyor.transformer_onnx import EncoderConfig, random_weights, sentence_classifier

VOCAB = ["[PAD]", "[UNK]", "good", "great", "bad", "awful", "spam", "ham", "eggs"] + [f"w{i}" for i in range(40)]
POSITIVE_WORDS = {"good", "great"}
NEGATIVE_WORDS = {"bad", "awful"}


def word_tokenizer(path: Path) -> Path:
    """A lower-casing whitespace word-level tokenizer over VOCAB."""
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path))
    return path


def token_count(text: str, max_length: int = 128) -> int:
    return min(len(text.split()), max_length)


def expected_positive(text: str) -> bool:
    """What the word-count models answer: more positive words than negative ones."""
    words = text.lower().split()
    pos = sum(w in POSITIVE_WORDS for w in words)
    neg = sum(w in NEGATIVE_WORDS for w in words)
    return pos > neg


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _ids(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])


def word_vote_model(path: Path, labels: int = 2) -> Path:
    """``input_ids, attention_mask -> logits``: per-label word votes summed over unmasked tokens.

    Label 0 gets a 0.5 head start, so ties are negative.  With 3 labels, 'spam'
    votes for label 2.
    """
    table = np.zeros((len(VOCAB), labels), np.float32)
    for word in NEGATIVE_WORDS:
        table[VOCAB.index(word), 0] = 1
    for word in POSITIVE_WORDS:
        table[VOCAB.index(word), 1] = 1
    if labels == 3:
        table[VOCAB.index("spam"), 2] = 2
    bias = np.zeros(labels, np.float32)
    bias[0] = 0.5
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["votes"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last"], ["mask3"]),
        helper.make_node("Mul", ["votes", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq_axis"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "word_vote",
        [_ids("input_ids"), _ids("attention_mask")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels])],
        [
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.array([-1], np.int64), "last"),
            numpy_helper.from_array(np.array([1], np.int64), "seq_axis"),
        ],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def failing_vote_model(path: Path, word: str = "spam") -> Path:
    """The word-vote model whose graph fails (a Reshape onnxruntime refuses) on any batch holding ``word``:
    it loads, warms up and answers other texts as :func:`word_vote_model` does, and these with HTTP 500."""
    word_vote_model(path)
    model = onnx.load(str(path))
    graph = model.graph
    graph.node[-1].output[0] = "votes_logits"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(VOCAB.index(word), np.int64), "fail_word"),
            numpy_helper.from_array(np.array(1000, np.int64), "fail_columns"),
            numpy_helper.from_array(np.array(2, np.int64), "label_columns"),
            numpy_helper.from_array(np.array([-1], np.int64), "any_rows"),
            numpy_helper.from_array(np.array([0], np.int64), "first_axis"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Equal", ["input_ids", "fail_word"], ["is_word"]),
            helper.make_node("Cast", ["is_word"], ["is_word_i"], to=TensorProto.INT64),
            helper.make_node("ReduceMax", ["is_word_i"], ["has_word"], keepdims=0),
            helper.make_node("Mul", ["has_word", "fail_columns"], ["extra_columns"]),
            helper.make_node("Add", ["extra_columns", "label_columns"], ["columns"]),
            helper.make_node("Unsqueeze", ["columns", "first_axis"], ["columns_1d"]),
            helper.make_node("Concat", ["any_rows", "columns_1d"], ["shape"], axis=0),
            helper.make_node("Reshape", ["votes_logits", "shape"], ["logits"]),
        ]
    )
    return _save(model, path)


def no_mask_model(path: Path) -> Path:
    """Like roberta-sequence-classification-9: one ``input`` int64 [batch, seq], no mask.

    ``logits[:, 0]`` is the sequence length the model saw and ``logits[:, 1]``
    ten times the positive words minus the negative ones.  Padding a sequence
    would change its length logit, so a test can prove nothing was padded.
    """
    votes = np.zeros((len(VOCAB),), np.float32)
    for word in POSITIVE_WORDS:
        votes[VOCAB.index(word)] = 10
    for word in NEGATIVE_WORDS:
        votes[VOCAB.index(word)] = -10
    nodes = [
        helper.make_node("Gather", ["votes", "input"], ["token_votes"]),
        helper.make_node("ReduceSum", ["token_votes", "axis1"], ["score"], keepdims=1),
        helper.make_node("Shape", ["input"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["seq_len"], axis=0),
        helper.make_node("Cast", ["seq_len"], ["seq_len_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["score", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "seq_len_f"], ["length_col"]),
        helper.make_node("Concat", ["length_col", "score"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "no_mask",
        [_ids("input")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [
            numpy_helper.from_array(votes, "votes"),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def doubling_model(path: Path) -> Path:
    """A tensor model without tokenizer: ``x`` FP32 [batch, 3] -> ``y = 2x``."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


TINY_BERT = EncoderConfig(
    vocab_size=len(VOCAB),
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    max_positions=512,
)


def tiny_bert_model(path: Path, seed: int = 0) -> Path:
    """A real (random-weight) BERT encoder + mean pooling + head, with an attention mask."""
    rng = np.random.default_rng(seed + 7)
    head_w = rng.standard_normal((2, TINY_BERT.hidden_size)).astype(np.float32)
    head_b = np.zeros(2, np.float32)
    model = sentence_classifier(random_weights(TINY_BERT, seed), TINY_BERT, head_w, head_b)
    onnx.save(model, path)
    return path


def model_dir(
    root: Path,
    name: str,
    build: object,
    labels: list[str] | None = None,
    max_length: int = 128,
    **spec: object,
) -> Path:
    """A model directory: model.onnx from ``build(path)``, tokenizer.json and model.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    build(root / "model.onnx")  # type: ignore[operator]
    word_tokenizer(root / "tokenizer.json")
    fields = {
        "name": name,
        "version": "1",
        "labels": labels or ["negative", "positive"],
        "max_length": max_length,
        **spec,
    }
    (root / "model.yaml").write_text(yaml.safe_dump(fields))
    return root
