"""Duration strings like ``30s``, ``500ms``, ``2m`` or ``1h``, as every option and YAML field takes them;
and ``--since`` moments, a duration back from now (``7d`` too) or an ISO date or time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from conveyor.errors import InvalidInput

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")
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


def parse_since(value: str) -> datetime:
    """The moment ``value`` names, in UTC: ``30m``, ``12h``, ``7d`` ago, or an ISO date or time (UTC unless it says)."""
    days = _DAYS.match(value)
    if days:
        return datetime.now(UTC) - timedelta(days=float(days.group(1)))
    if _DURATION.match(value):
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"since {value!r}: give a duration (30m, 12h, 7d) or an ISO date or time (2026-12-07, 2026-12-07T15:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
