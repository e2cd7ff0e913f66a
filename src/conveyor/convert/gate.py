"""The conversion gate: the ONNX model must answer as the original does, row for row.

For classifiers, the share of rows whose label (the argmax of the probabilities) agrees, and
the largest difference of any probability; for regressors, the largest difference of a value,
relative to the value where it is above 1 (float32 inside the graph keeps about 7 digits).
Rows that fail are kept, so the refusal can show them.  A conversion that drops or reorders a
feature moves answers on rows where that feature matters, and fails here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor.errors import ConveyorError

DEFAULT_AGREEMENT = 0.999
DEFAULT_TOLERANCE = 1e-4
SHOWN_ROWS = 10


class ConversionRefused(ConveyorError):
    """The converted model does not answer as the original: nothing was registered."""


@dataclass
class GateReport:
    task: str
    rows: int
    sample: str  # where the rows came from
    agreement: float | None = None
    max_difference: float = 0.0
    bad_rows: list[int] = field(default_factory=list)
    passed: bool = True
    precision: str = "float32"  # what the graph computes numbers in
    in_float32: str | None = None  # where float32 was refused first: what it gave (the reason for double)
    min_agreement: float = DEFAULT_AGREEMENT  # the thresholds it was judged by
    tolerance: float = DEFAULT_TOLERANCE

    def metrics(self) -> dict[str, float]:
        found = {"conversion_rows": float(self.rows), "conversion_max_difference": self.max_difference}
        if self.agreement is not None:
            found["conversion_label_agreement"] = self.agreement
        return found

    def summary(self, with_sample: bool = True) -> str:
        parts = [f"{self.rows} rows ({self.sample})"] if with_sample else []
        if self.agreement is not None:
            parts.append(f"labels agree on {self.agreement:.2%}")
        parts.append(f"largest difference {self.max_difference:.2g}")
        if self.precision != "float32":
            why = f" (in float32: {self.in_float32})" if self.in_float32 else ""
            parts.append(f"computed in {self.precision}{why}")
        return ", ".join(parts)

    def over_the_gate(self) -> str:
        """What crossed the gate, each with the option that sets its threshold."""
        if self.max_difference == float("inf"):
            return "the graph answers another shape than the original"
        crossed = []
        if self.agreement is not None and self.agreement < self.min_agreement:
            crossed.append(f"labels agree on {self.agreement:.2%} < --min-agreement {self.min_agreement:g}")
        if self.max_difference > self.tolerance:
            crossed.append(f"largest difference {self.max_difference:.2g} > --tolerance {self.tolerance:g}")
        return ", ".join(crossed)

    def accepted_by(self) -> str:
        """The thresholds under which these answers would pass: the options that accept a known difference."""
        if self.max_difference == float("inf"):
            return ""
        flags = []
        if self.max_difference > self.tolerance:
            flags.append(f"--tolerance {_rounded_up(self.max_difference):g}")
        if self.agreement is not None and self.agreement < self.min_agreement:
            flags.append(f"--min-agreement {math.floor(self.agreement * 1000) / 1000:g}")
        return " ".join(flags)


def _rounded_up(value: float) -> float:
    """VALUE rounded up to two significant digits: 0.02213 -> 0.023."""
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return round(math.ceil(value / step - 1e-9) * step, 12)


def check_conversion(
    task: str,
    original: np.ndarray,
    converted: np.ndarray,
    sample: str,
    agreement: float = DEFAULT_AGREEMENT,
    tolerance: float = DEFAULT_TOLERANCE,
) -> GateReport:
    """Compare the scores of the two models on the same rows (probabilities, or values [N, 1])."""
    original = np.asarray(original, dtype=np.float64).reshape(len(original), -1)
    converted = np.asarray(converted, dtype=np.float64).reshape(len(converted), -1)
    report = GateReport(task=task, rows=len(original), sample=sample, min_agreement=agreement, tolerance=tolerance)
    if original.shape != converted.shape:
        report.passed = False
        report.bad_rows = list(range(min(len(original), SHOWN_ROWS)))
        report.max_difference = float("inf")
        return report
    difference = np.abs(original - converted)
    if task == "tabular-regression":
        difference = difference / np.maximum(1.0, np.abs(original))
    per_row = difference.max(axis=1)
    report.max_difference = float(per_row.max()) if len(per_row) else 0.0
    wrong = per_row > tolerance
    if task.endswith("classification"):
        same = original.argmax(axis=1) == converted.argmax(axis=1)
        report.agreement = float(same.mean())
        wrong |= ~same
        report.passed = report.agreement >= agreement and report.max_difference <= tolerance
    else:
        report.passed = report.max_difference <= tolerance
    report.bad_rows = [int(i) for i in np.flatnonzero(wrong)]
    return report


def refusal(report: GateReport, rows: Any, original: np.ndarray, converted: np.ndarray, labels: list[str]) -> str:
    """The message that refuses a conversion: its headline, then the first rows that disagree."""
    return "\n".join([headline(report, [report.accepted_by()]), *rows_shown(report, rows, original, converted, labels)])


def headline(report: GateReport, remedies: list[str], crossed: str | None = None) -> str:
    """The refusal in one line: the numbers, what crossed the gate (``crossed``: default the report's own),
    and the options that change it."""
    line = f"the converted model does not answer as the original: {report.summary()}; nothing was registered"
    crossed = report.over_the_gate() if crossed is None else crossed
    if crossed:
        line += f". Over the gate {crossed}"
    remedies = [remedy for remedy in remedies if remedy]
    if remedies:
        line += f". To register it: {', or '.join(remedies)}"
    return line


def rows_shown(
    report: GateReport, rows: Any, original: np.ndarray, converted: np.ndarray, labels: list[str]
) -> list[str]:
    """The first rows that disagree, with both answers.

    ``rows`` is the frame of a tabular model's rows, or one description per input of another."""
    lines = []
    for index in report.bad_rows[:SHOWN_ROWS]:
        row = {k: _plain(v) for k, v in rows.iloc[index].items()} if hasattr(rows, "iloc") else rows[index]
        lines.append(f"  row {index} {row}: original {_answer(original[index], labels)}, "
                     f"onnx {_answer(converted[index], labels)}")  # fmt: skip
    hidden = len(report.bad_rows) - SHOWN_ROWS
    if hidden > 0:
        lines.append(f"  ... and {hidden} more rows")
    return lines


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _answer(scores: np.ndarray, labels: list[str]) -> str:
    scores = np.asarray(scores).reshape(-1)
    if not labels:
        return f"{scores[0]:.6g}"
    return f"{labels[int(scores.argmax())]} {np.round(scores, 5).tolist()}"
