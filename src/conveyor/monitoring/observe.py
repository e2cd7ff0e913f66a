"""From a model and data to watched columns: the reference (run through the model here) and the
payload log's records (as the server answered them), described by the same feature code.

The reference is scored by the same task server ``conveyor serve`` runs (onnxruntime, the same
tokenizer and preprocessing), so a profile's output shares are the served model's, not the
training framework's.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.errors import InvalidInput
from conveyor.monitoring.features import OUTPUT, Columns, TextFeatures, add_outputs, add_records, answered_labels
from conveyor.serving.model import softmax
from conveyor.serving.payload_record import RequestRecord
from conveyor.serving.spec import ResolvedModel
from conveyor.task_kinds import Task

BATCH = 64


class Observer:
    """Turns items and answers of one model version into columns."""

    def __init__(self, resolved: ResolvedModel) -> None:
        self.resolved = resolved
        self.spec = resolved.spec
        if not self.spec.task.named_inputs:
            raise InvalidInput(f"model {self.spec.name!r} takes raw tensors: there are no named inputs to monitor")
        self.text = TextFeatures(resolved.tokenizer_path) if self.spec.task.takes_text else None
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
        from conveyor.serving.dataplane import ServingOptions
        from conveyor.serving.tasks import server_for

        items = list(read_items(path, self.spec.task))
        if not items:
            raise InvalidInput(f"{path}: no reference rows")
        task = server_for(self.resolved, ServingOptions())
        task.load()
        columns = Columns()
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            scores = np.asarray(task.score(batch), dtype=np.float64)
            self.add_inputs(columns, task.logged_inputs(batch))
            if task.classifier:
                if task.scores_are_logits:
                    scores = softmax(scores)
                add_outputs(columns, scores.tolist(), self.spec.labels, [])
            else:
                add_outputs(columns, None, [], scores[:, 0].tolist())
        return columns


def read_items(path: Path, task: Task) -> Iterator[Any]:
    """Reference items from a file: CSV (records; a text model's ``text`` column), JSON Lines or a
    JSON array (strings or records), or plain text (one text per line)."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such reference file")
    text = task.takes_text
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                yield row.get("text", "") if text else _typed(row)
    elif suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                yield _json(line, f"{path}:{number}")
    elif suffix == ".json":
        data = _json(path.read_text(), str(path))
        if not isinstance(data, list):
            raise InvalidInput(f"{path}: expected a JSON array of items")
        yield from data
    elif text:
        yield from (line for line in path.read_text().splitlines() if line.strip())
    else:
        raise InvalidInput(f"{path}: a tabular reference is a .csv, .json or .jsonl file")


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """CSV cells as the JSON a client would send: numbers where they parse, an empty cell as null (pandas'
    ``to_csv`` writes NaN as one)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value == "":
            out[key] = None
            continue
        try:
            out[key] = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            out[key] = value
    return out


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
