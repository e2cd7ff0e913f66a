"""What is watched of a request and its answer: named columns of numbers or categories.

One function turns items (texts, tabular records) and their probabilities into the columns a
profile summarises and a drift test compares, so the reference at registration and the logged
traffic in production are described by the same code.  Text: characters, words, tokens and the
unknown-token rate (the tokenizer's own ``[UNK]``), the signals that a new client sends another
kind of text, and, where asked, the texts themselves as ``text.embedding`` (an ``embedding``
column: judged by their meaning, ``monitoring/embedding_drift.py``).
Tabular: each feature as it is.  Outputs: the predicted label's share, the
confidence (the top probability), or a regressor's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["numeric", "categorical", "embedding"]
INPUT, OUTPUT = "input", "output"


@dataclass
class Column:
    name: str
    kind: Kind
    side: str  # input or output
    values: list[Any] = field(default_factory=list)


@dataclass
class Columns:
    """Every watched column, filled item by item."""

    by_name: dict[str, Column] = field(default_factory=dict)

    def add(self, name: str, kind: Kind, side: str, value: Any) -> None:
        column = self.column(name, kind, side)
        if value is not None:
            column.values.append(value)

    def column(self, name: str, kind: Kind, side: str) -> Column:
        """The column ``name``, made (empty) where it is new."""
        column = self.by_name.get(name)
        if column is None:
            column = self.by_name[name] = Column(name, kind, side)
        return column

    @property
    def items(self) -> int:
        return max((len(c.values) for c in self.by_name.values()), default=0)


EMBEDDING = "text.embedding"
SMALL = 8  # rows of probabilities below which plain Python reads them faster than numpy


class TextFeatures:
    """Length, words, tokens and unknown-token rate of each text (the model's own tokenizer), and
    the text itself for embedding drift when ``embeddings`` is set (embedded when judged)."""

    def __init__(self, tokenizer_path: Path | None, embeddings: bool = False) -> None:
        self.embeddings = embeddings
        self.tokenizer: Any = None
        self.unknown_id: int | None = None
        if tokenizer_path is not None and tokenizer_path.is_file():
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
            self.tokenizer.no_truncation()
            model = self.tokenizer.model
            unk = getattr(model, "unk_token", None)
            self.unknown_id = self.tokenizer.token_to_id(unk) if unk else None

    def add(self, columns: Columns, texts: list[Any]) -> None:
        strings = [t for t in texts if isinstance(t, str)]
        encoded = self.tokenizer.encode_batch(strings, add_special_tokens=False) if self.tokenizer and strings else []
        for index, text in enumerate(strings):
            columns.add("text.characters", "numeric", INPUT, len(text))
            columns.add("text.words", "numeric", INPUT, len(text.split()))
            if self.embeddings:
                columns.add(EMBEDDING, "embedding", INPUT, text)
            if encoded:
                ids = encoded[index].ids
                columns.add("text.tokens", "numeric", INPUT, len(ids))
                if self.unknown_id is not None:
                    rate = sum(1 for i in ids if i == self.unknown_id) / len(ids) if ids else 0.0
                    columns.add("text.unknown_token_rate", "numeric", INPUT, rate)


def add_records(columns: Columns, records: list[Any], features: Mapping[str, str]) -> None:
    """Tabular rows: each named feature (a number, or a category for strings and booleans)."""
    described: list[tuple[Any, str, bool]] | None = None  # per feature: its column's append, name, numeric
    for record in records:
        if not isinstance(record, dict):
            continue
        if described is None:
            described = []
            for name, type_ in features.items():
                numeric = type_ in ("number", "integer")
                column = columns.column(f"feature.{name}", "numeric" if numeric else "categorical", INPUT)
                described.append((column.values.append, name, numeric))
        for append, name, numeric in described:
            value = record.get(name)
            if numeric:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    append(value)
            elif value is not None:
                append(str(value))


def add_outputs(
    columns: Columns, probabilities: list[list[float]] | None, labels: list[str], values: list[Any]
) -> None:
    """The answer side: label shares and confidence for a classifier, the value for a regressor."""
    if probabilities:
        tops: Iterable[tuple[int, float]]
        if len(probabilities) < SMALL:  # a request's few rows: numpy's per-call cost exceeds the work
            rows: Any = [[float(p) for p in row] for row in probabilities]
            tops = [(max(range(len(row)), key=row.__getitem__), max(row)) for row in rows]
        else:
            array = np.asarray(probabilities, dtype=np.float64)
            tops = zip(array.argmax(axis=1).tolist(), array.max(axis=1).tolist(), strict=True)
        for top, confidence in tops:
            columns.add("output.label", "categorical", OUTPUT, labels[top] if labels else None)
            columns.add("output.confidence", "numeric", OUTPUT, confidence)
        return
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            columns.add("output.value", "numeric", OUTPUT, float(value))


def answered_labels(outputs: list[Any], labels: list[str], boolean: str | None) -> list[str | None]:
    """The labels a logged answer gave, read from the answer itself (a router's record has no
    probabilities): ``{"label": "high"}``, or ``{"positive": true}`` for a two-label boolean answer."""
    found: list[str | None] = []
    for answer in outputs:
        if not isinstance(answer, dict):
            found.append(None)
        elif "label" in answer:
            found.append(str(answer["label"]))
        elif boolean is not None and isinstance(answer.get(boolean), bool) and len(labels) == 2:
            found.append(boolean if answer[boolean] else next(label for label in labels if label != boolean))
        else:
            found.append(None)
    return found
