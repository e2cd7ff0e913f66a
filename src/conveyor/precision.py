"""What a converted tabular model's graph computes numbers in: the one list of choices behind
``conveyor models register --precision``, the conversion's options and the version's ``precision``
property.

It lives apart from ``conveyor.convert`` so that the CLI can offer the choices without importing
the converters (and numpy) at startup.
"""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    """``auto`` tries float32, then double where the framework's converter offers it and float32
    changes the answers beyond the gate; ``float32`` or ``double`` is the only one tried."""

    AUTO = "auto"
    FLOAT32 = "float32"
    DOUBLE = "double"
