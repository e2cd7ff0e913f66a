"""From a model and data to watched columns: the reference (run through the model here) and the
payload log's records (as the server answered them), described by the same feature code.

The reference is parsed and scored by the same task server ``conveyor serve`` runs (the same
checks, onnxruntime, the same tokenizer and preprocessing), so a profile's output shares are the
served model's, not the training framework's; a CSV's cells are typed by the model's features
(as ``conveyor verify --sample`` types them: ``False`` is a boolean, an empty cell a missing value).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.errors import ConveyorError, InvalidInput
from conveyor.monitoring.estimate import QualityReference, quality_reference
from conveyor.monitoring.features import OUTPUT, Columns, TextFeatures, add_outputs, add_records, answered_labels
from conveyor.serving.payload_record import RequestRecord
from conveyor.serving.spec import ModelSpec, ResolvedModel

BATCH = 64


class Observer:
    """Turns items and answers of one model version into columns; ``embeddings``: a text model's
    texts are kept for embedding drift too (``conveyor monitor`` and reference profiles; a server's
    own gauges leave them out: the encoder's time is not the serving process's to spend)."""

    def __init__(self, resolved: ResolvedModel, embeddings: bool = False) -> None:
        self.resolved = resolved
        self.spec = resolved.spec
        if not self.spec.task.named_inputs:
            raise InvalidInput(f"model {self.spec.name!r} takes raw tensors: there are no named inputs to monitor")
        self.text = TextFeatures(resolved.tokenizer_path, embeddings) if self.spec.task.takes_text else None
        self.features = {f.name: f.type for f in self.spec.features}

    def add_inputs(self, columns: Columns, items: list[Any] | None) -> None:
        if not items:
            return
        if self.text is not None:
            self.text.add(columns, items)
        elif self.features:
            add_records(columns, items, self.features)

    def add_record(self, columns: Columns, record: RequestRecord) -> None:
        """One payload log line (one request)."""
        self.add_inputs(columns, record.inputs)
        outputs = [o if isinstance(o, dict) else {} for o in record.outputs]
        probabilities = record.probabilities
        if probabilities is None and self.spec.labels and not self.spec.task.regression:
            for label in answered_labels(outputs, self.spec.labels, self.spec.boolean_label):  # a router's record
                columns.add("output.label", "categorical", OUTPUT, label)
            return
        add_outputs(columns, probabilities, self.spec.labels, [o.get("value") for o in outputs])

    def reference_columns(self, path: Path) -> Columns:
        """The reference file's items, scored by the served model's code, as columns."""
        return self.score_reference(path)[0]

    def score_reference(self, path: Path) -> tuple[Columns, QualityReference | None]:
        """The reference file's items, scored by the served model's code, as columns; and, where its
        rows carry the true answer (``label`` or ``value``), those rows scored (label-free estimates)."""
        from conveyor.serving.dataplane import ServingOptions
        from conveyor.serving.model import softmax
        from conveyor.serving.tasks import server_for

        items = reference_items(path, self.spec)
        if not items:
            raise InvalidInput(f"{path}: no reference rows")
        truth = read_truth(path, self.spec)
        task = server_for(self.resolved, ServingOptions())
        task.load()
        columns = Columns()
        probabilities: list[list[float]] = []
        values: list[float] = []
        for start in range(0, len(items), BATCH):
            try:
                batch = task.parse_items(items[start : start + BATCH])
            except ConveyorError as exc:
                raise InvalidInput(f"{path}: {exc} (counting from item {start})") from None
            scores = np.asarray(task.score(batch), dtype=np.float64)
            self.add_inputs(columns, task.logged_inputs(batch))
            if task.classifier:
                if task.scores_are_logits:
                    scores = softmax(scores)
                add_outputs(columns, scores.tolist(), self.spec.labels, [])
                probabilities += scores.tolist()
            else:
                add_outputs(columns, None, [], scores[:, 0].tolist())
                values += scores[:, 0].tolist()
        if truth is None or len(truth) != len(items):
            return columns, None
        if task.classifier:
            return columns, quality_reference(self.spec.labels, probabilities, [], [], truth)
        features = [
            {k: v for k, v in item.items() if k in self.features} if isinstance(item, dict) else {} for item in items
        ]
        return columns, quality_reference([], None, features, values, truth)


def read_items(path: Path, spec: ModelSpec) -> Iterator[Any]:
    """Reference items from a file: CSV (records typed by the model's features as pandas writes
    them; a text model's ``text`` column), JSON Lines or a JSON array (strings or records), a table in
    pandas' split form (``{"columns", "data"}``, as MLflow logs an input example), or plain text (one
    text per line)."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such reference file")
    text = spec.task.takes_text
    suffix = path.suffix.lower()
    if suffix == ".csv" and not text:
        from conveyor.verify.examples import csv_records  # httpx, rich: only where a reference is read

        yield from csv_records(path, [feature.model_dump(exclude_none=True) for feature in spec.features])
    elif suffix == ".csv":
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                yield row.get("text", "")
    elif suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                yield _json(line, f"{path}:{number}")
    elif suffix == ".json":
        data = _json(path.read_text(), str(path))
        if isinstance(data, dict) and {"columns", "data"} <= set(data) and not text:
            yield from _split_records(data, path)  # pandas' split form: MLflow's input_example.json
            return
        if not isinstance(data, list):
            raise InvalidInput(f"{path}: expected a JSON array of items or pandas' split form")
        yield from data
    elif text:
        yield from (line for line in path.read_text().splitlines() if line.strip())
    else:
        raise InvalidInput(f"{path}: a tabular reference is a .csv, .json or .jsonl file")


def reference_items(path: Path, spec: ModelSpec) -> list[Any]:
    """The reference's items as the model takes them: a record keeps the model's features only (its
    true answer, ``label`` or ``value``, and an evaluation split's other columns are not inputs)."""
    names = {feature.name for feature in spec.features}
    return [
        {k: v for k, v in item.items() if k in names} if names and isinstance(item, dict) else item
        for item in read_items(path, spec)
    ]


def read_truth(path: Path, spec: ModelSpec) -> list[Any] | None:
    """The true answer of each reference item (``label``, or ``value`` for a regressor), where the
    file has that column or key (CSV, JSON or JSON Lines records); None where it has none."""
    target = spec.task.answer_field
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if target not in (reader.fieldnames or []):
                return None
            return [row[target] or None for row in reader]
    if suffix in (".json", ".jsonl", ".ndjson"):
        items = list(read_items(path, spec))
        if not any(isinstance(item, dict) and target in item for item in items):
            return None
        return [item.get(target) if isinstance(item, dict) else None for item in items]
    return None


def _split_records(data: dict[str, Any], path: Path) -> Iterator[dict[str, Any]]:
    """The rows of pandas' split form as records (its ``index``, if any, is not an input)."""
    columns, rows = data["columns"], data["data"]
    if not isinstance(columns, list) or not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise InvalidInput(f'{path}: pandas\' split form is {{"columns": [...], "data": [[...], ...]}}')
    for number, row in enumerate(rows):
        if len(row) != len(columns):
            raise InvalidInput(f"{path}: row {number} has {len(row)} values for {len(columns)} columns")
        yield dict(zip(columns, row, strict=True))


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not JSON ({exc.msg})") from None


def chunked(
    records: Iterable[RequestRecord], observer: Observer, window: int
) -> Iterator[tuple[Columns, list[RequestRecord]]]:
    """Windows of at least ``window`` items, in log order: (columns, the window's records)."""
    columns, kept = Columns(), []
    for record in records:
        observer.add_record(columns, record)
        kept.append(record)
        if columns.items >= window:
            yield columns, kept
            columns, kept = Columns(), []
    if kept:
        yield columns, kept
