"""The protocol-independent data plane: readiness, prediction and inference.

Routes in ``app.py`` parse HTTP and call these methods; nothing here knows
about HTTP beyond raising ``ClientError`` with a status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from conveyor import __version__
from conveyor.errors import BadRequest, InvalidInput, NotFound, NotReady, PayloadTooLarge
from conveyor.serving import metrics, tabular
from conveyor.serving.batching import Batcher, BatchStats
from conveyor.serving.model import TextClassifier
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import ResolvedModel
from conveyor.serving.tabular import TabularModel
from conveyor.serving.v2 import DecodedRequest, datatype_of, encode_response, texts_from_tensor

log = logging.getLogger(__name__)

WARMUP_TEXTS = ["warm up", "a somewhat longer sentence to warm up the model with more tokens in it"]


@dataclass(frozen=True)
class ServingOptions:
    """Limits and batching knobs of one server."""

    max_batch_size: int = 32
    max_batch_wait_ms: float = 0.0
    parallel_batches: int = 1
    max_body_bytes: int = 1_000_000
    max_items: int = 256
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class DataPlane:
    """Serves one model version."""

    def __init__(self, resolved: ResolvedModel, options: ServingOptions) -> None:
        self.resolved = resolved
        self.spec = resolved.spec
        self.options = options
        self.state = "loading"
        self.error: str | None = None
        self.model: TextClassifier | TabularModel | None = None
        self._batcher: Batcher[Any, np.ndarray] | None = None
        self._labels = np.array(self.spec.labels, dtype=object)
        self._metric_labels = {"model": self.spec.name, "version": self.spec.version}

    # ---- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the session and tokenizer off the event loop, warm up, then become ready."""
        started = time.monotonic()
        try:
            self.model = await asyncio.to_thread(self._load_and_warm_up)
        except Exception as exc:
            self.state = "failed"
            self.error = str(exc)
            log.error("model %s failed to load: %s", self.spec.name, exc)
            raise
        batcher: Batcher[Any, np.ndarray] = Batcher(
            self.model.score if isinstance(self.model, TabularModel) else self.model.classify,
            max_batch_size=self.options.max_batch_size,
            max_wait=self.options.max_batch_wait_ms / 1000,
            on_batch=self._record_batch,
            parallel_batches=self.options.parallel_batches,
        )
        batcher.start()
        self._batcher = batcher
        self.state = "ready"
        log.info("model %s:%s ready in %.1fs", self.spec.name, self.spec.version, time.monotonic() - started)

    def _load_and_warm_up(self) -> TextClassifier | TabularModel:
        if self.spec.tabular:
            tabular_model = TabularModel(self.resolved, self.options.runtime)
            tabular_model.score_columns(tabular_model.warm_up_columns())
            return tabular_model
        model = TextClassifier(self.resolved, self.options.runtime, max_run=self.options.max_batch_size)
        if model.takes_text:
            model.classify(WARMUP_TEXTS[:1])
            model.classify(WARMUP_TEXTS * (self.options.max_batch_size // 2 or 1))
        return model

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        if self.state != "failed":
            self.state = "stopped"

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def _require_ready(self) -> TextClassifier | TabularModel:
        if self.state != "ready" or self.model is None:
            raise NotReady(f"model {self.spec.name!r} is not ready yet ({self.state})")
        return self.model

    def check_model(self, name: str, version: str | None) -> None:
        if name != self.spec.name:
            raise NotFound(f"model {name!r} not found; this server serves {self.spec.name!r}")
        if version is not None and version != self.spec.version:
            raise NotFound(
                f"version {version!r} of model {name!r} not found; this server serves version {self.spec.version!r}"
            )

    def _record_batch(self, stats: BatchStats) -> None:
        labels = self._metric_labels
        metrics.BATCH_SIZE.labels(**labels).observe(stats.size)
        metrics.INFERENCE_TIME.labels(**labels).observe(stats.inference_seconds)
        wait = metrics.QUEUE_WAIT.labels(**labels)
        for seconds in stats.queue_waits:
            wait.observe(seconds)

    # ---- prediction ------------------------------------------------------------------------

    async def classify(self, texts: list[str]) -> np.ndarray:
        """Logits ``[len(texts), num_labels]`` through the batcher."""
        self.require_text()
        assert self._batcher is not None
        rows = await self._batcher.submit(texts)
        logits = np.stack(rows)
        self._count_predictions(logits)
        return logits

    def _count_predictions(self, logits: np.ndarray) -> None:
        winners = logits.argmax(axis=1)
        for index, count in zip(*np.unique(winners, return_counts=True), strict=True):
            metrics.PREDICTIONS.labels(label=self.spec.labels[index], **self._metric_labels).inc(int(count))

    def require_text(self) -> None:
        """Refuse texts for a model that takes raw tensors (its callers name the v2 route instead)."""
        model = self._require_ready()
        if isinstance(model, TabularModel):
            raise BadRequest(f"model {self.spec.name!r} takes rows of named columns, not texts")
        if not model.takes_text:
            raise BadRequest(f"model {self.spec.name!r} takes raw tensors; call /v2/models/{self.spec.name}/infer")

    def parse_predict(self, body: bytes) -> list[Any]:
        """The classic body, checked: texts for a text model, records for a tabular one."""
        if not self.spec.tabular:
            return parse_texts(body, self)
        payload = json_body(body, 'JSON records, e.g. [{"column": 1.5}]')
        return tabular.rows_of(tabular.parse_rows(payload, self.spec, self.options.max_items))

    async def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        """The classic answer per item: ``{"positive": bool}`` or ``{"label": name}`` for texts;
        label and probabilities, or the value, for a row of a tabular model."""
        if self.spec.tabular:
            self._require_ready()
            assert self._batcher is not None
            scores = np.stack(await self._batcher.submit(items))
            if self.spec.task == "tabular-classification":
                self._count_predictions(scores)
            return tabular.answers(self.spec, scores)
        texts = items
        logits = await self.classify(texts)
        winners = logits.argmax(axis=1).tolist()
        boolean = self.spec.boolean_label
        if boolean is not None:
            target = self.spec.labels.index(boolean)
            return [{boolean: w == target} for w in winners]
        return [{"label": self.spec.labels[w]} for w in winners]

    async def infer(self, request: DecodedRequest) -> tuple[bytes, dict[str, str]]:
        model = self._require_ready()
        if isinstance(model, TabularModel):
            return encode_response(self.spec.name, self.spec.version, request, await self._infer_rows(model, request))
        text_inputs = [name for name, dtype in request.datatypes.items() if dtype == "BYTES"]
        if model.takes_text and text_inputs:
            outputs = await self._infer_text(request, text_inputs)
        else:
            assert self._batcher is not None
            tensors = request.tensors
            wanted = request.requested
            outputs = await self._batcher.run_alone(lambda: model.run_tensors(tensors, wanted))
        return encode_response(self.spec.name, self.spec.version, request, outputs)

    async def _infer_text(self, request: DecodedRequest, text_inputs: list[str]) -> dict[str, np.ndarray]:
        if len(text_inputs) != 1 or len(request.tensors) != 1:
            raise InvalidInput(
                f"model {self.spec.name!r} takes exactly one BYTES input with the texts, "
                f"got inputs {sorted(request.tensors)}",
            )
        name = text_inputs[0]
        texts = texts_from_tensor(name, request.tensors[name])
        self.check_item_count(len(texts))
        logits = await self.classify(texts)
        available = {
            "logits": lambda: logits,
            "probabilities": lambda: softmax(logits),
            "label": lambda: self._labels[logits.argmax(axis=1)],
        }
        wanted = request.requested or ["logits", "label"]
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise BadRequest(f"unknown output(s) {unknown}; this model has {sorted(available)}")
        return {n: available[n]() for n in wanted}

    async def _infer_rows(self, model: TabularModel, request: DecodedRequest) -> dict[str, np.ndarray]:
        """One named input per column, as MLServer's pandas codec sends them."""
        columns = tabular.columns_from_tensors(self.spec, request.tensors, self.options.max_items)
        assert self._batcher is not None
        scores = await self._batcher.run_alone(lambda: model.score_columns(columns))
        if self.spec.task == "tabular-regression":
            values = scores[:, 0]
            available = {"value": lambda: values, "predict": lambda: values}
        else:
            self._count_predictions(scores)
            probabilities = scores.astype(np.float32)
            labels = lambda: self._labels[scores.argmax(axis=1)]  # noqa: E731
            available = {
                "label": labels,
                "predict": labels,
                "probabilities": lambda: probabilities,
                "predict_proba": lambda: probabilities,
            }
        default = ["value"] if self.spec.task == "tabular-regression" else ["label", "probabilities"]
        wanted = request.requested or default
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise BadRequest(f"unknown output(s) {unknown}; this model has {sorted(available)}")
        return {n: available[n]() for n in wanted}

    def check_item_count(self, count: int) -> None:
        if count == 0:
            raise InvalidInput("no texts given: send at least one")
        if count > self.options.max_items:
            raise PayloadTooLarge(f"too many items: {count} > the limit of {self.options.max_items}")

    # ---- metadata --------------------------------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "conveyor", "version": __version__, "extensions": ["binary_tensor_data", "model_repository"]}

    def repository_index(self) -> list[dict[str, Any]]:
        state = "READY" if self.ready else ("UNAVAILABLE" if self.state == "failed" else "LOADING")
        return [{"name": self.spec.name, "version": self.spec.version, "state": state}]

    def model_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.spec.name,
            "versions": [self.spec.version],
            "platform": "onnxruntime_onnx",
        }
        if self.spec.task == "text-classification":
            n = len(self.spec.labels)
            meta["inputs"] = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
            meta["outputs"] = [
                {"name": "logits", "datatype": "FP32", "shape": [-1, n]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, n]},
            ]
            meta["parameters"] = {"labels": self.spec.labels, "max_length": self.spec.max_length}
        elif self.spec.tabular:
            meta["inputs"] = [
                {"name": f.name, "datatype": tabular.v2_datatype(f), "shape": [-1, 1]} for f in self.spec.features
            ]
            if self.spec.task == "tabular-regression":
                meta["outputs"] = [{"name": "value", "datatype": "FP64", "shape": [-1]}]
            else:
                n = len(self.spec.labels)
                meta["outputs"] = [
                    {"name": "label", "datatype": "BYTES", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, n]},
                ]
                meta["parameters"] = {"labels": self.spec.labels}
            meta["parameters"] = {**meta.get("parameters", {}), "task": self.spec.task}
        elif self.model is not None:
            meta["inputs"] = [_tensor_meta(i) for i in self.model.session.inputs]
            meta["outputs"] = [_tensor_meta(o) for o in self.model.session.outputs]
        return meta


def _tensor_meta(info: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "datatype": datatype_of(np.empty(0, dtype=info.dtype)),
        "shape": [-1 if d is None else d for d in info.shape],
    }


def json_body(body: bytes, expected: str) -> Any:
    """The classic route's body as JSON; an empty body or bad JSON is a 400 saying what to send."""
    if not body.strip():
        raise BadRequest(f"request body is empty: send {expected}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def parse_texts(body: bytes, plane: DataPlane) -> list[str]:
    """The classic body: a non-empty JSON array of strings, at most ``--max-items`` of them."""
    payload = json_body(body, 'a JSON array of strings, e.g. ["some text"]')
    if not isinstance(payload, list):
        kind = "null" if payload is None else type(payload).__name__
        kind = {"dict": "object", "str": "string", "int": "number", "float": "number"}.get(kind, kind)
        raise InvalidInput(f"expected a JSON array of strings, got {kind}")
    if not payload:
        raise InvalidInput("expected a non-empty JSON array of strings, got []")
    plane.check_item_count(len(payload))
    for index, item in enumerate(payload):
        if type(item) is not str:
            kind = (
                "null"
                if item is None
                else {"dict": "object", "list": "array"}.get(type(item).__name__, type(item).__name__)
            )
            raise InvalidInput(f"item {index} must be a string, got {kind}")
    return payload
