"""Duration strings like ``30s``, ``500ms``, ``2m`` or ``1h``, as every option and YAML field takes them."""

from __future__ import annotations

import re

from conveyor.errors import InvalidInput

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``30``, ``30s``, ``500ms``, ``2m`` or ``1h``."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise InvalidInput(f"invalid duration {value!r}: use e.g. 30s, 500ms, 2m")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInput(f"a duration must be positive, not {value!r}")
    return seconds
