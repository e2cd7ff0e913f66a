"""Text classification, and a bare ONNX graph served as raw tensors (the same session code).

``/predict`` takes a JSON array of strings and answers ``{"positive": true}`` for two labels
(the seed's contract) or ``{"label": name, "score": p}`` (the winning label's probability, as the
image task answers) for any other label set; v2 takes one BYTES input with the texts, or the
graph's own tensors by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conveyor.errors import BadRequest, InvalidInput
from conveyor.serving.body import json_body
from conveyor.serving.model import TextClassifier, softmax
from conveyor.serving.tasks import RunAlone, Scores, Submit, TaskServer
from conveyor.serving.v2 import DecodedRequest, datatype_of, texts_from_tensor
from conveyor.task_kinds import Task

TEXT_INPUT = "text"  # the BYTES input v2 clients send texts in, as the model's metadata names it
WARMUP_TEXTS = ["warm up", "a somewhat longer sentence to warm up the model with more tokens in it"]
_ITEM_KIND = {"dict": "object", "list": "array"}
_JSON_KIND = {"dict": "object", "list": "array", "str": "string", "int": "number", "float": "number"}


def _kind(value: object) -> str:
    return "null" if value is None else _JSON_KIND.get(type(value).__name__, type(value).__name__)


class TextServer(TaskServer):
    model: TextClassifier
    scores_are_logits = True

    def load(self) -> None:
        self.model = TextClassifier(self.resolved, self.options.runtime, max_run=self.options.max_batch_size)
        if self.model.takes_text:
            self.model.classify(WARMUP_TEXTS[:1])
            self.model.classify(WARMUP_TEXTS * (self.options.max_batch_size // 2 or 1))

    @property
    def session(self) -> Any:
        return self.model.session

    @property
    def classifier(self) -> bool:
        return self.spec.task.takes_text

    def score(self, items: list[Any]) -> Scores:
        return self.model.classify(items)

    def require_text(self) -> None:
        if not self.model.takes_text:
            raise BadRequest(f"model {self.spec.name!r} takes raw tensors; call /v2/models/{self.spec.name}/infer")

    def parse_predict(self, body: bytes, content_type: str | None) -> list[Any]:
        """A non-empty JSON array of strings, at most ``--max-items`` of them."""
        self.check_content_type(content_type)
        payload = json_body(body, 'a JSON array of strings, e.g. ["some text"]')
        self.require_text()
        if not isinstance(payload, list):
            raise InvalidInput(f"expected a JSON array of strings, got {_kind(payload)}")
        if not payload:
            raise InvalidInput("expected a non-empty JSON array of strings, got []")
        check_item_count(len(payload), self.options.max_items)
        for index, item in enumerate(payload):
            if type(item) is not str:
                kind = "null" if item is None else _ITEM_KIND.get(type(item).__name__, type(item).__name__)
                raise InvalidInput(f"item {index} must be a string, got {kind}")
        return payload

    def answers(self, scores: Scores) -> list[dict[str, Any]]:
        winners = scores.argmax(axis=1).tolist()
        boolean = self.spec.boolean_label
        if boolean is not None:
            target = self.spec.labels.index(boolean)
            return [{boolean: w == target} for w in winners]
        best = softmax(scores).max(axis=1).tolist()
        return [{"label": self.spec.labels[w], "score": round(p, 6)} for w, p in zip(winners, best, strict=True)]

    async def infer(self, request: DecodedRequest, submit: Submit, run_alone: RunAlone) -> dict[str, np.ndarray]:
        text_inputs = [name for name, dtype in request.datatypes.items() if dtype == "BYTES"]
        if not (self.model.takes_text and text_inputs):
            tensors, wanted = request.tensors, request.requested
            return await run_alone(lambda: self.model.run_tensors(tensors, wanted))
        if len(text_inputs) != 1 or len(request.tensors) != 1:
            raise InvalidInput(
                f"model {self.spec.name!r} takes exactly one BYTES input with the texts, "
                f"got inputs {sorted(request.tensors)}",
            )
        name = text_inputs[0]
        if name != TEXT_INPUT:
            graph = sorted(info.name for info in self.model.session.inputs)
            raise BadRequest(
                f"unknown input {name!r}: model {self.spec.name!r} takes its texts as the BYTES input "
                f"{TEXT_INPUT!r} (or its graph's own inputs {graph})"
            )
        texts = texts_from_tensor(name, request.tensors[name])
        check_item_count(len(texts), self.options.max_items)
        logits = await submit(texts)
        return self.pick(
            request.requested,
            ["logits", "label"],
            {
                "logits": lambda: logits,
                "probabilities": lambda: softmax(logits),
                "label": lambda: self.labels[logits.argmax(axis=1)],
            },
        )

    def metadata(self) -> dict[str, Any]:
        if self.spec.task is Task.TENSOR:
            if not self.loaded:
                return {}
            return {
                "inputs": [tensor_meta(i) for i in self.model.session.inputs],
                "outputs": [tensor_meta(o) for o in self.model.session.outputs],
            }
        n = len(self.spec.labels)
        return {
            "inputs": [{"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": [-1, n]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, n]},
            ],
            "parameters": {
                "labels": self.spec.labels,
                "boolean_label": self.spec.boolean_label,
                "max_length": self.spec.max_length,
                "task": self.spec.task,
            },
        }


def check_item_count(count: int, max_items: int, what: str = "texts") -> None:
    from conveyor.errors import PayloadTooLarge

    if count == 0:
        raise InvalidInput(f"no {what} given: send at least one")
    if count > max_items:
        raise PayloadTooLarge(f"too many items: {count} > the limit of {max_items}")


def tensor_meta(info: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "datatype": datatype_of(np.empty(0, dtype=info.dtype)),
        "shape": [-1 if d is None else d for d in info.shape],
    }
