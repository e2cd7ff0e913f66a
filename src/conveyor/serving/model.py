"""A loaded model: tokenizer + ONNX session, and the batch planning between them.

Text in, logits out.  The planner groups a batch of token sequences into runs:

* models with an attention mask: sort by length and pad only to the longest
  sequence of each run, cutting a new run when the padding it would add costs
  more than starting another run (length bucketing);
* models without an attention mask (the model zoo's RoBERTa): never pad; each
  run holds sequences of exactly one length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from conveyor.errors import BadRequest, InvalidInput, ModelLoadError
from conveyor.serving.runtime import OnnxSession, RuntimeOptions, TensorInfo
from conveyor.serving.spec import ResolvedModel
from conveyor.task_kinds import Task
from conveyor.tracing import phase

# What one extra session.run costs, in padded tokens' worth of compute.
# Measured on the reference model: ~1.5 ms fixed cost per run vs ~0.1 ms per token.
RUN_OVERHEAD_TOKENS = 16

INPUT_ID_NAMES = ("input_ids", "input", "ids", "tokens", "input_ids:0")


@dataclass(frozen=True)
class InputRoles:
    """Which graph input holds what."""

    input_ids: str
    attention_mask: str | None
    token_type_ids: str | None


def detect_roles(inputs: list[TensorInfo]) -> InputRoles:
    """Map graph inputs to token ids / attention mask / token types by name."""
    ids = mask = types = None
    for info in inputs:
        lowered = info.name.lower()
        if "mask" in lowered:
            mask = info.name
        elif "token_type" in lowered or "segment" in lowered:
            types = info.name
        elif lowered in INPUT_ID_NAMES or (ids is None and info.dtype.kind == "i"):
            ids = info.name
        else:
            raise ModelLoadError(f"cannot tell what input {info.name!r} of the text model is for")
    if ids is None:
        raise ModelLoadError("the text model has no integer token-id input")
    return InputRoles(ids, mask, types)


def plan_runs(lengths: list[int], has_mask: bool, max_run: int) -> list[list[int]]:
    """Split item indices into runs for ``session.run`` (see the module docstring)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    runs: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current:
            run_max = lengths[current[-1]]
            if has_mask:
                added_padding = len(current) * (lengths[index] - run_max)
                cut = added_padding > RUN_OVERHEAD_TOKENS
            else:
                cut = lengths[index] != run_max
            if cut or len(current) >= max_run:
                runs.append(current)
                current = []
        current.append(index)
    if current:
        runs.append(current)
    return runs


class TextClassifier:
    """Tokenizer + session for a text-classification model.  Thread-safe."""

    def __init__(self, resolved: ResolvedModel, options: RuntimeOptions, max_run: int = 64) -> None:
        self.spec = resolved.spec
        self.session = OnnxSession(resolved.model_path, options)
        self.max_run = max_run
        self.tokenizer = None
        self.roles = None
        self.output = self._pick_output()
        if resolved.tokenizer_path is not None:
            self.tokenizer = _load_tokenizer(resolved.tokenizer_path, self.spec.max_length)
            self.roles = detect_roles(self.session.inputs)

    def _pick_output(self) -> TensorInfo:
        outputs = self.session.outputs
        if self.spec.task is Task.TENSOR:
            return outputs[0]
        for info in outputs:
            if info.name in ("logits", "output", "scores", "probabilities"):
                chosen = info
                break
        else:
            chosen = outputs[0]
        check_classes(chosen, self.spec.labels)
        return chosen

    @property
    def takes_text(self) -> bool:
        return self.tokenizer is not None

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Rust batch encoding, truncated to the spec's max_length."""
        assert self.tokenizer is not None
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    def classify(self, texts: list[str]) -> np.ndarray:
        """Logits ``[len(texts), num_labels]`` in input order."""
        if not self.takes_text:
            raise BadRequest(f"model {self.spec.name!r} takes raw tensors, not text")
        logits = np.empty((len(texts), len(self.spec.labels)), dtype=np.float32)
        for run, feeds in self.feeds(texts):
            with phase("inference"):
                out = self.session.run(feeds, [self.output.name])[self.output.name]
            logits[run] = out.reshape(len(run), -1)
        return logits

    def feeds(self, texts: list[str]) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
        """The model's input tensors for ``texts``, a run of similar lengths at a time: (the run's indices, feeds)."""
        assert self.roles is not None
        with phase("tokenize"):
            token_ids = self.tokenize(texts)
        lengths = [len(ids) for ids in token_ids]
        for run in plan_runs(lengths, self.roles.attention_mask is not None, self.max_run):
            width = lengths[run[-1]]  # runs are sorted by length
            ids = np.zeros((len(run), width), dtype=np.int64)
            mask = np.zeros((len(run), width), dtype=np.int64)
            for row, index in enumerate(run):
                n = lengths[index]
                ids[row, :n] = token_ids[index]
                mask[row, :n] = 1
            feeds = {self.roles.input_ids: ids}
            if self.roles.attention_mask:
                feeds[self.roles.attention_mask] = mask
            if self.roles.token_type_ids:
                feeds[self.roles.token_type_ids] = np.zeros_like(ids)
            yield run, feeds

    def run_tensors(self, feeds: dict[str, np.ndarray], outputs: list[str] | None) -> dict[str, np.ndarray]:
        """Run the graph on client-supplied tensors (checked against the graph's inputs)."""
        expected = {info.name: info for info in self.session.inputs}
        missing = sorted(set(expected) - set(feeds))
        unknown = sorted(set(feeds) - set(expected))
        if unknown:
            raise BadRequest(f"unknown input(s) {unknown}; the model takes {sorted(expected)}")
        if missing:
            raise BadRequest(f"missing input(s) {missing}; the model takes {sorted(expected)}")
        prepared: dict[str, np.ndarray] = {}
        for name, array in feeds.items():
            info = expected[name]
            prepared[name] = _conform(name, array, info)
        known_outputs = [o.name for o in self.session.outputs]
        for name in outputs or []:
            if name not in known_outputs:
                raise BadRequest(f"unknown output {name!r}; the model has {known_outputs}")
        return self.session.run(prepared, outputs)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, row by row."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def check_classes(output: TensorInfo, labels: list[str]) -> None:
    """Refuse a classifier whose scores output has another number of classes than the spec's labels."""
    last = output.shape[-1] if output.shape else None
    if last is not None and last != len(labels):
        raise ModelLoadError(
            f"output {output.name!r} has {last} classes but the spec names {len(labels)} labels {labels}"
        )


def _conform(name: str, array: np.ndarray, info: TensorInfo) -> np.ndarray:
    if len(array.shape) != len(info.shape):
        raise BadRequest(f"input {name!r}: expected {len(info.shape)} dimensions, got shape {list(array.shape)}")
    for got, want in zip(array.shape, info.shape, strict=True):
        if want is not None and got != want:
            raise BadRequest(f"input {name!r}: expected shape {_fmt(info.shape)}, got {list(array.shape)}")
    if array.dtype.kind == "O":
        if info.dtype.kind not in "OUS":
            if None in array.reshape(-1).tolist():  # BOOL data with a null
                raise InvalidInput(f"input {name!r}: has a missing value (null), which {info.dtype.name} cannot hold")
            raise BadRequest(f"input {name!r}: expected {info.dtype.name}, got BYTES")
        for index, value in enumerate(array.reshape(-1).tolist()):
            if not isinstance(value, str):
                got = "null" if value is None else "bytes that are not UTF-8 text"
                raise InvalidInput(f"input {name!r} item {index}: expected a string, got {got}")
        return array
    if array.dtype != info.dtype:
        same_kind = (array.dtype.kind in "iu" and info.dtype.kind in "iu") or (
            array.dtype.kind == "f" and info.dtype.kind == "f"
        )
        if not same_kind:
            raise BadRequest(f"input {name!r}: expected {info.dtype.name}, got {array.dtype.name}")
        converted = array.astype(info.dtype)
        if info.dtype.kind in "iu" and not np.array_equal(converted, array):
            raise BadRequest(f"input {name!r}: values do not fit {info.dtype.name}")
        array = converted
    return np.ascontiguousarray(array)


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


def _load_tokenizer(path: object, max_length: int) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception
        raise ModelLoadError(f"{path}: not a tokenizers JSON file: {exc}") from exc
    tokenizer.no_padding()  # we pad per run, only where an attention mask exists
    tokenizer.enable_truncation(max_length)
    return tokenizer
