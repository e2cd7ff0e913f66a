"""What a user tells a conversion beyond the file: the gate's thresholds and what the file cannot say."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conveyor.convert.gate import DEFAULT_AGREEMENT, DEFAULT_TOLERANCE
from conveyor.errors import InvalidInput
from conveyor.precision import Precision


@dataclass(frozen=True)
class ConvertOptions:
    sample: Path | None = None
    agreement: float = DEFAULT_AGREEMENT
    tolerance: float = DEFAULT_TOLERANCE
    positive_label: str | None = None
    labels: list[str] | None = None  # names for the classes the model numbers 0..K-1
    input_shape: tuple[int, ...] | None = None  # one input without the batch axis (TorchScript records none)
    task: str | None = None  # image-classification or tensor, for a PyTorch model
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])
    precision: Precision = Precision.AUTO


def computes_in_float32(options: ConvertOptions, kind: str) -> None:
    """A converter whose graphs compute in float32 only refuses ``--precision double`` in one line."""
    if options.precision == Precision.DOUBLE:
        raise InvalidInput(f"--precision double: {kind} converts in float32 only; double is for tabular models")
