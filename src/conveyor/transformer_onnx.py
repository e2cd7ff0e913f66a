"""Write a BERT-style encoder with a classification head as one ONNX graph.

Why by hand: the usual route (torch + ``torch.onnx.export``) needs PyTorch, and
pip's default PyTorch on Linux is a multi-GB CUDA build.  A BERT encoder is a
short, well-known sequence of ONNX operators, so we emit it with
``onnx.helper`` straight from the safetensors weights, in the patterns a torch
export has (GELU as ``Div`` by sqrt 2, scores divided by sqrt d, the mask
unsqueezed, cast, then ``(1 - mask) * -10000``): onnxruntime fuses GELU with
its bias when it loads the model, and its transformer optimizer (the ``fused``
variants of ``conveyor models optimize``) finds every layer's attention, as it
would in a torch export.

The same builder makes the RoBERTa-base-shaped benchmark model (random weights,
one ``input`` tensor and no attention mask, like the model zoo's
roberta-sequence-classification-9.onnx).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class EncoderConfig:
    """The hyper-parameters of a BERT-family encoder."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    position_offset: int = 0  # RoBERTa numbers positions from padding_idx + 1 = 2


class _GraphWriter:
    """Collects nodes and initializers, and hands out unique tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        # np.ascontiguousarray would turn a 0-d scalar into shape (1,), so copy instead
        self.initializers.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        """``x @ weight.T + bias`` with a torch-layout ``[out, in]`` weight."""
        w = self.const(f"{hint}_w", weight.T.astype(np.float32))
        b = self.const(f"{hint}_b", bias.astype(np.float32))
        return self.op("Add", [self.op("MatMul", [x, w]), b], hint)

    def layer_norm(self, x: str, scale: np.ndarray, bias: np.ndarray, eps: float, hint: str) -> str:
        s = self.const(f"{hint}_scale", scale.astype(np.float32))
        b = self.const(f"{hint}_bias", bias.astype(np.float32))
        return self.op("LayerNormalization", [x, s, b], hint, axis=-1, epsilon=eps)

    def gelu(self, x: str) -> str:
        """Exact (erf) GELU as torch exports it: ``x * (1 + erf(x / sqrt(2))) * 0.5``."""
        sqrt2 = self.const("sqrt2", np.array(math.sqrt(2), np.float32))
        one = self.const("one", np.array(1.0, np.float32))
        half = self.const("half", np.array(0.5, np.float32))
        erf = self.op("Erf", [self.op("Div", [x, sqrt2])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [erf, one])]), half], "gelu")


def _attention(
    g: _GraphWriter,
    x: str,
    w: dict[str, np.ndarray],
    prefix: str,
    cfg: EncoderConfig,
    mask_bias: str | None,
) -> str:
    head_dim = cfg.hidden_size // cfg.num_heads
    split_shape = g.const("split_shape", np.array([0, 0, cfg.num_heads, head_dim], np.int64))
    merge_shape = g.const("merge_shape", np.array([0, 0, cfg.hidden_size], np.int64))

    def heads(kind: str, perm: list[int]) -> str:
        proj = g.linear(x, w[f"{prefix}.self.{kind}.weight"], w[f"{prefix}.self.{kind}.bias"], kind)
        return g.op("Transpose", [g.op("Reshape", [proj, split_shape])], perm=perm)

    q = heads("query", [0, 2, 1, 3])  # [B, h, S, d]
    k = heads("key", [0, 2, 3, 1])  # [B, h, d, S]
    v = heads("value", [0, 2, 1, 3])  # [B, h, S, d]
    scale = g.const("attn_scale", np.array(math.sqrt(head_dim), np.float32))
    scores = g.op("Div", [g.op("MatMul", [q, k]), scale])
    if mask_bias is not None:
        scores = g.op("Add", [scores, mask_bias])
    probs = g.op("Softmax", [scores], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    merged = g.op("Reshape", [context, merge_shape])
    out = g.linear(merged, w[f"{prefix}.output.dense.weight"], w[f"{prefix}.output.dense.bias"], "attn_out")
    return g.layer_norm(
        g.op("Add", [out, x]),
        w[f"{prefix}.output.LayerNorm.weight"],
        w[f"{prefix}.output.LayerNorm.bias"],
        cfg.layer_norm_eps,
        "attn_ln",
    )


def _encoder(
    g: _GraphWriter,
    input_ids: str,
    attention_mask: str | None,
    w: dict[str, np.ndarray],
    cfg: EncoderConfig,
) -> str:
    """Embeddings and transformer layers; returns the ``[B, S, H]`` hidden state."""
    word = g.op("Gather", [g.const("word_emb", w["embeddings.word_embeddings.weight"]), input_ids])
    # Positions 0..S-1 (shifted for RoBERTa) are a slice of the position table.
    seq_len = g.op(
        "Gather",
        [g.op("Shape", [input_ids]), g.const("seq_dim", np.array([1], np.int64))],
        axis=0,
    )
    start = g.const("pos_start", np.array([cfg.position_offset], np.int64))
    pos = g.op(
        "Slice",
        [
            g.const("pos_emb", w["embeddings.position_embeddings.weight"]),
            start,
            g.op("Add", [seq_len, start]),
            g.const("pos_axis", np.array([0], np.int64)),
        ],
    )
    token_type = w["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
    x = g.op("Add", [g.op("Add", [word, pos]), g.const("token_type_emb", token_type)])
    x = g.layer_norm(
        x,
        w["embeddings.LayerNorm.weight"],
        w["embeddings.LayerNorm.bias"],
        cfg.layer_norm_eps,
        "emb_ln",
    )

    mask_bias = None
    if attention_mask is not None:
        # [B, S] -> [B, 1, 1, S], then (1 - mask) * -10000: in the order a torch export has it
        heads_axis = g.op("Unsqueeze", [attention_mask, g.const("heads_axis", np.array([1], np.int64))])
        query_axis = g.op("Unsqueeze", [heads_axis, g.const("query_axis", np.array([2], np.int64))])
        mask_f = g.op("Cast", [query_axis], to=TensorProto.FLOAT)
        blocked = g.op("Sub", [g.const("one_f", np.array(1.0, np.float32)), mask_f])
        mask_bias = g.op("Mul", [blocked, g.const("neg", np.array(-10000.0, np.float32))], "mask_bias")

    for layer in range(cfg.num_layers):
        p = f"encoder.layer.{layer}"
        x = _attention(g, x, w, f"{p}.attention", cfg, mask_bias)
        inter = g.gelu(g.linear(x, w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"], "ffn_in"))
        out = g.linear(inter, w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"], "ffn_out")
        x = g.layer_norm(
            g.op("Add", [out, x]),
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
            cfg.layer_norm_eps,
            "ffn_ln",
        )
    return x


def _mean_pool_normalized(g: _GraphWriter, hidden: str, attention_mask: str) -> str:
    """Sentence-transformers pooling: mask-weighted mean, then L2 normalisation."""
    mask_f = g.op("Cast", [attention_mask], to=TensorProto.FLOAT)
    mask3 = g.op("Unsqueeze", [mask_f, g.const("last_axis", np.array([-1], np.int64))])
    seq_axis = g.const("seq_axis", np.array([1], np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [hidden, mask3]), seq_axis], keepdims=0)
    counts = g.op("ReduceSum", [mask3, seq_axis], keepdims=0)
    counts = g.op("Max", [counts, g.const("eps", np.array(1e-9, np.float32))])
    return g.op("LpNormalization", [g.op("Div", [summed, counts])], axis=1, p=2)


def _model(
    g: _GraphWriter,
    inputs: list[onnx.ValueInfoProto],
    logits: str,
    num_labels: int,
    doc: str,
) -> onnx.ModelProto:
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_labels])
    graph = helper.make_graph(g.nodes, "classifier", inputs, [output], g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="conveyor",
        doc_string=doc,
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _int64_input(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])


def embedding_model(weights: dict[str, np.ndarray], cfg: EncoderConfig) -> onnx.ModelProto:
    """Encoder + mean pooling + L2 norm: ``input_ids, attention_mask -> embedding``."""
    g = _GraphWriter()
    hidden = _encoder(g, "input_ids", "attention_mask", weights, cfg)
    pooled = _mean_pool_normalized(g, hidden, "attention_mask")
    g.nodes.append(helper.make_node("Identity", [pooled], ["embedding"]))
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", cfg.hidden_size])
    graph = helper.make_graph(
        g.nodes,
        "embedder",
        [_int64_input("input_ids"), _int64_input("attention_mask")],
        [output],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="conveyor")
    model.ir_version = 8
    return model


def sentence_classifier(
    weights: dict[str, np.ndarray],
    cfg: EncoderConfig,
    head_weight: np.ndarray,
    head_bias: np.ndarray,
    doc: str = "",
) -> onnx.ModelProto:
    """Encoder + mean pooling + L2 norm + linear head: ``input_ids, attention_mask -> logits``.

    ``head_weight`` is ``[num_labels, hidden]`` and ``head_bias`` ``[num_labels]``.
    """
    g = _GraphWriter()
    hidden = _encoder(g, "input_ids", "attention_mask", weights, cfg)
    pooled = _mean_pool_normalized(g, hidden, "attention_mask")
    w = g.const("head_w", head_weight.astype(np.float32))
    b = g.const("head_b", head_bias.astype(np.float32))
    logits = g.op("Gemm", [pooled, w, b], "head", transB=1)
    inputs = [_int64_input("input_ids"), _int64_input("attention_mask")]
    return _model(g, inputs, logits, head_weight.shape[0], doc)


def random_weights(cfg: EncoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Encoder weights drawn like BERT's initialiser, named like a Hugging Face checkpoint."""
    rng = np.random.default_rng(seed)
    h, i = cfg.hidden_size, cfg.intermediate_size

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": rand(cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": rand(cfg.max_positions, h),
        "embeddings.token_type_embeddings.weight": rand(cfg.type_vocab_size, h),
        "embeddings.LayerNorm.weight": np.ones(h, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(h, np.float32),
    }
    for layer in range(cfg.num_layers):
        p = f"encoder.layer.{layer}"
        for kind in ("query", "key", "value"):
            w[f"{p}.attention.self.{kind}.weight"] = rand(h, h)
            w[f"{p}.attention.self.{kind}.bias"] = np.zeros(h, np.float32)
        w[f"{p}.attention.output.dense.weight"] = rand(h, h)
        w[f"{p}.attention.output.dense.bias"] = np.zeros(h, np.float32)
        w[f"{p}.intermediate.dense.weight"] = rand(i, h)
        w[f"{p}.intermediate.dense.bias"] = np.zeros(i, np.float32)
        w[f"{p}.output.dense.weight"] = rand(h, i)
        w[f"{p}.output.dense.bias"] = np.zeros(h, np.float32)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{ln}.weight"] = np.ones(h, np.float32)
            w[f"{p}.{ln}.bias"] = np.zeros(h, np.float32)
    return w


def random_cls_classifier(
    cfg: EncoderConfig,
    num_labels: int = 2,
    input_name: str = "input",
    seed: int = 0,
) -> onnx.ModelProto:
    """A classifier with random weights, one ``input`` and no attention mask.

    Shaped like the model zoo's roberta-sequence-classification-9.onnx when
    given a RoBERTa-base config: same inputs, outputs and compute, meaningless
    predictions.  For speed and memory measurements only.
    """
    rng = np.random.default_rng(seed + 1)  # the head's draws, apart from the encoder's
    h = cfg.hidden_size
    w = random_weights(cfg, seed)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    g = _GraphWriter()
    hidden = _encoder(g, input_name, None, w, cfg)
    # Classification on the first token, as RobertaForSequenceClassification does.
    first = g.op("Gather", [hidden, g.const("cls_idx", np.array(0, np.int64))], axis=1)
    dense = g.op("Tanh", [g.linear(first, rand(h, h), np.zeros(h, np.float32), "cls_dense")])
    logits = g.linear(dense, rand(num_labels, h), np.zeros(num_labels, np.float32), "cls_out")
    return _model(g, [_int64_input(input_name)], logits, num_labels, "random weights: speed only")


ROBERTA_BASE = EncoderConfig(
    vocab_size=50265,
    hidden_size=768,
    num_layers=12,
    num_heads=12,
    intermediate_size=3072,
    max_positions=514,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    position_offset=2,
)
