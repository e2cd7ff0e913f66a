"""How each task is served: one module per task, chosen by the spec's ``task``.

The data plane owns what every task shares: loading off the event loop, the batcher,
readiness, the prediction metrics.  A task owns what differs: the model object it loads,
what ``/predict`` takes and answers, and the Open Inference Protocol's inputs and outputs.
Adding a task is its member in ``conveyor/task_kinds.py`` (what it means elsewhere), one module here
with a ``TaskServer`` subclass, and its line in ``server_for``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from conveyor.errors import BadRequest, UnsupportedMediaType
from conveyor.serving.body import is_json
from conveyor.serving.spec import ResolvedModel
from conveyor.serving.v2 import DecodedRequest
from conveyor.task_kinds import Task

if TYPE_CHECKING:
    from conveyor.serving.dataplane import ServingOptions

Scores = np.ndarray
Submit = Callable[[list[Any]], Awaitable[Scores]]  # items through the batcher, one score row each
RunAlone = Callable[[Callable[[], Any]], Awaitable[Any]]  # a whole call on the batcher's worker


class TaskServer(ABC):
    """One task's side of serving a model version."""

    @property
    def classifier(self) -> bool:
        """Whether answers are labels: the data plane counts them per label."""
        return True

    #: Whether ``score`` answers logits (the payload log records probabilities).
    scores_are_logits: bool = False

    def __init__(self, resolved: ResolvedModel, options: ServingOptions) -> None:
        self.resolved = resolved
        self.spec = resolved.spec
        self.options = options
        self.labels = np.array(self.spec.labels, dtype=object)

    @abstractmethod
    def load(self) -> None:
        """Load the session and warm it up (runs in a worker thread, before the server is ready)."""

    @abstractmethod
    def score(self, items: list[Any]) -> Scores:
        """The batcher's function: one row of scores per item, in order."""

    @abstractmethod
    def parse_predict(self, body: bytes, content_type: str | None) -> list[Any]:
        """The classic ``/predict`` body as items, checked (a 4xx naming the problem)."""

    def parse_items(self, items: list[Any]) -> list[Any]:
        """Items already read from JSON or CSV (a reference file's, a stored sample's) checked and
        converted exactly as a ``/predict`` body holding them is, so ``score`` sees what it is served."""
        return self.parse_predict(orjson.dumps(items), "application/json")

    def logged_inputs(self, items: list[Any]) -> list[Any] | None:
        """What the payload log may keep of the items (JSON-able), or None to keep none."""
        return items

    @abstractmethod
    def answers(self, scores: Scores) -> list[dict[str, Any]]:
        """The classic answer of each item."""

    @abstractmethod
    async def infer(self, request: DecodedRequest, submit: Submit, run_alone: RunAlone) -> dict[str, np.ndarray]:
        """The v2 outputs for a decoded request."""

    @abstractmethod
    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata's ``inputs``, ``outputs`` and ``parameters`` (asked before and after loading)."""

    @property
    def loaded(self) -> bool:
        return getattr(self, "model", None) is not None

    @property
    def session(self) -> Any:
        """The ONNX session (for the metadata of a model served as raw tensors)."""
        raise NotImplementedError

    def check_content_type(self, content_type: str | None) -> None:
        """Refuse a ``/predict`` body this task cannot read, before it is read (415)."""
        if content_type is not None and not is_json(content_type):
            raise UnsupportedMediaType(f"Content-Type must be application/json, got {content_type!r}")

    def pick(
        self, wanted: list[str] | None, default: list[str], available: dict[str, Callable[[], np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The requested v2 outputs (or the default ones), each computed only if asked for."""
        names = wanted or default
        unknown = [n for n in names if n not in available]
        if unknown:
            raise BadRequest(f"unknown output(s) {unknown}; this model has {sorted(available)}")
        return {n: available[n]() for n in names}

    def label_outputs(self, scores: Scores) -> dict[str, Callable[[], np.ndarray]]:
        """A classifier's v2 outputs from its probabilities: ``label`` and ``probabilities``."""
        return {
            "label": lambda: self.labels[scores.argmax(axis=1)],
            "probabilities": lambda: scores.astype(np.float32),
        }

    def label_metadata(self) -> list[dict[str, Any]]:
        """The v2 metadata of ``label_outputs``."""
        return [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.spec.labels)]},
        ]


def server_for(resolved: ResolvedModel, options: ServingOptions) -> TaskServer:
    from conveyor.serving.tasks import image, tabular, text

    servers: dict[Task, type[TaskServer]] = {
        Task.TEXT_CLASSIFICATION: text.TextServer,
        Task.TENSOR: text.TextServer,  # a bare ONNX file: raw tensors over v2, the same session code
        Task.TABULAR_CLASSIFICATION: tabular.TabularServer,
        Task.TABULAR_REGRESSION: tabular.TabularServer,
        Task.IMAGE_CLASSIFICATION: image.ImageServer,
    }
    return servers[resolved.spec.task](resolved, options)
