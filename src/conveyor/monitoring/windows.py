"""Windows of logged traffic, cut from the summary store: by count of items, or by time.

``Span`` is what a caller asks for: the records from ``since`` to ``until`` (``--since 1d``,
``--until 2026-12-07T12:00``; ``since`` counts from the start of the window, or the hour, that
holds it) and, optionally, windows of a fixed length of time (``--window-time 1h``: each window
holds the requests of one clock hour, aligned to the epoch, so the same hour is the same window in
every call); without it, windows of at least ``window`` items
in log order, as ever.  ``Logged`` holds the requests in range from the summaries
(``monitoring/summaries.py``), the feedback that came for them, and cuts and assembles windows:
a window's columns are slices of each file's stored columns, not the log's lines parsed again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from conveyor.errors import InvalidInput
from conveyor.monitoring.features import Column, Columns
from conveyor.monitoring.summaries import FileSummary


def span_of(since: str | None, until: str | None, window_time: str | None) -> Span:
    """A span from the command line's words: ``--since 7d``, ``--until 2026-12-07``, ``--window-time 1h``."""
    from conveyor.durations import parse_duration, parse_since

    start = None if since is None else parse_since(since)
    end = None if until is None else parse_since(until)
    if start is not None and end is not None and end <= start:
        raise InvalidInput(f"--until {until} is not after --since {since}")
    seconds = None
    if window_time is not None:
        days = window_time.strip().removesuffix("d")
        seconds = float(days) * 86400 if days != window_time.strip() and _number(days) else parse_duration(window_time)
    return Span(start, end, seconds)


def _number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def iso(moment: datetime) -> str:
    """A moment as the log writes times (UTC, ISO 8601, milliseconds), so the two compare as strings."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Span:
    """Which records are judged and how they are windowed."""

    since: datetime | None = None
    until: datetime | None = None
    window_seconds: float | None = None  # windows by time; None: by count of items

    def bounds(self) -> tuple[str | None, str | None]:
        """``since`` from the start of its window (of its hour, for windows by count), and ``until``,
        as the log writes times: so a call judges the windows the previous one judged, and finds
        them kept (``monitoring/window_cache.py``), until the moment moves past a window."""
        if self.since is None:
            start = None
        else:
            step = self.window_seconds or 3600.0
            start = iso(datetime.fromtimestamp(self.since.timestamp() // step * step, UTC))
        return (start, None if self.until is None else iso(self.until))

    def holds(self, time: str) -> bool:
        since, until = self.bounds()
        return (since is None or time >= since) and (until is None or time <= until)

    def as_dict(self) -> dict[str, Any]:
        since, until = self.bounds()
        return {"since": since, "until": until, "window_seconds": self.window_seconds}


@dataclass
class Rows:
    """Logged requests, one entry per request in each list."""

    time: list[str] = field(default_factory=list)
    request_id: list[str] = field(default_factory=list)
    served: list[list[Any]] = field(default_factory=list)
    probabilities: list[Any] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Segment:
    """A run of in-range requests of one file: its requests ``lo`` to ``hi``, from index ``start`` on."""

    summary: FileSummary
    lo: int
    hi: int
    start: int


class Logged:
    """The requests in range, with the feedback for them, ready to be cut into windows."""

    def __init__(self) -> None:
        self.rows = Rows()
        self.segments: list[Segment] = []
        self.truth: dict[str, list[Any]] = {}  # request id -> true answers; the first feedback wins
        self.answers: list[tuple[str, str, list[Any]]] = []  # unsampled: time, request id, served
        self.hashed: dict[str, list[Any]] = {}

    @classmethod
    def of(cls, summaries: list[FileSummary], since: str | None, until: str | None) -> Logged:
        logged = cls()
        rows = logged.rows
        for summary in summaries:
            for request_id, truth in summary.feedback:
                logged.truth.setdefault(request_id, truth)
            answers = summary.answers
            for time, request_id, served in zip(answers["time"], answers["request_id"], answers["served"], strict=True):
                if (since is None or time >= since) and (until is None or time <= until):
                    logged.answers.append((time, request_id, served))
            for name, (every, seen) in summary.hashed.items():
                entry = logged.hashed.setdefault(name, [True, set()])
                entry[0] = entry[0] and every
                entry[1].update(seen)
            requests = summary.requests
            times = requests["time"]
            inside = [(since is None or t >= since) and (until is None or t <= until) for t in times]
            index = 0
            while index < len(times):
                if not inside[index]:
                    index += 1
                    continue
                lo = index
                while index < len(times) and inside[index]:
                    index += 1
                logged.segments.append(Segment(summary, lo, index, len(rows.time)))
                rows.time += times[lo:index]
                rows.request_id += requests["request_id"][lo:index]
                rows.served += requests["served"][lo:index]
                rows.probabilities += requests["probabilities"][lo:index]
                rows.kept += requests["kept"][lo:index]
                rows.inputs += requests.get("inputs", [None] * len(times))[lo:index]
        return logged

    def hashed_fields(self) -> dict[str, set[str]]:
        """The input fields whose logged values are all hashes, with the hashes seen (``monitoring.hashed``)."""
        return {name: seen for name, (every, seen) in self.hashed.items() if every}

    def _counts(self) -> tuple[list[str], np.ndarray]:
        """Per watched column, the values logged up to and including each request: [columns, requests]."""
        names = list(dict.fromkeys(name for s in self.segments for name in s.summary.columns))
        counts = np.zeros((len(names), len(self.rows.time)), dtype=np.int64)
        for segment in self.segments:
            for row, name in enumerate(names):
                column = segment.summary.columns.get(name)
                if column is None:
                    continue
                ends = np.asarray(column["ends"][segment.lo : segment.hi], dtype=np.int64)
                before = column["ends"][segment.lo - 1] if segment.lo else 0
                counts[row, segment.start : segment.start + len(ends)] = ends - before
        return names, _cumulative(counts, self.segments)

    def by_count(self, window: int) -> list[tuple[int, int]]:
        """Windows of at least ``window`` items (the most values of any column), in log order; the
        last one holds what is left."""
        total = len(self.rows.time)
        if not total:
            return []
        _, cumulative = self._counts()
        cuts, start = [], 0
        while start < total:
            base = cumulative[:, start - 1] if start else np.zeros(len(cumulative), dtype=np.int64)
            lo, hi = start, total  # the first request at which the window holds ``window`` items
            while lo < hi:
                middle = (lo + hi) // 2
                if len(base) and int(np.max(cumulative[:, middle] - base)) >= window:
                    hi = middle
                else:
                    lo = middle + 1
            end = min(lo + 1, total)
            cuts.append((start, end))
            start = end
        return cuts

    def by_time(self, seconds: float) -> list[tuple[int, int]]:
        """Windows of ``seconds`` each, aligned to the epoch (a clock hour, a UTC day); a request
        logged out of order stays in the window it came in."""
        cuts: list[tuple[int, int]] = []
        current, start = None, 0
        end = ""  # the current window's end as the log writes times: a time before it needs no parsing
        for index, time in enumerate(self.rows.time):
            if time < end and len(time) == len(end) and time.endswith("+00:00"):
                continue  # in the current window (or logged out of order: it stays there too)
            bucket = int(datetime.fromisoformat(time).timestamp() // seconds)
            if current is None or bucket > current:
                if current is not None:
                    cuts.append((start, index))
                current, start = bucket, index
                end = iso(datetime.fromtimestamp((bucket + 1) * seconds, UTC))
        if self.rows.time:
            cuts.append((start, len(self.rows.time)))
        return cuts

    def window(self, lo: int, hi: int) -> tuple[Columns, Rows]:
        """Requests ``lo`` to ``hi`` (in range order): their columns and rows."""
        columns = Columns()
        for segment in self.segments:
            first, last = max(lo, segment.start), min(hi, segment.start + segment.hi - segment.lo)
            if first >= last:
                continue
            a, b = segment.lo + first - segment.start, segment.lo + last - segment.start
            for name, stored in segment.summary.columns.items():
                ends = stored["ends"]
                values = stored["values"][ends[a - 1] if a else 0 : ends[b - 1]]
                column = columns.by_name.get(name)
                if column is None:
                    column = columns.by_name[name] = Column(name, stored["kind"], stored["side"])
                column.values += values
        r = self.rows
        rows = Rows(
            r.time[lo:hi], r.request_id[lo:hi], r.served[lo:hi], r.probabilities[lo:hi], r.inputs[lo:hi], r.kept[lo:hi]
        )
        return columns, rows

    def evidence(self, lo: int, hi: int, unsampled: list[tuple[str, list[Any]]]) -> list[Any]:
        """What the judgement of requests ``lo`` to ``hi`` depends on, besides the profile and the
        thresholds: each file's identity with the range of its requests, the unsampled answers, and
        the feedback for all of them (``monitoring/window_cache.py`` keys on it)."""
        parts: list[Any] = []
        for segment in self.segments:
            first, last = max(lo, segment.start), min(hi, segment.start + segment.hi - segment.lo)
            if first < last:
                parts.append(
                    [segment.summary.key, segment.lo + first - segment.start, segment.lo + last - segment.start]
                )
        ids = [*self.rows.request_id[lo:hi], *(request_id for request_id, _ in unsampled)]
        return [parts, unsampled, [[i, self.truth[i]] for i in ids if i in self.truth]]

    def answers_by_window(self, ends: list[int]) -> list[list[tuple[str, list[Any]]]]:
        """The unsampled requests' ``answer`` lines placed in the window whose time they fall in: up
        to its last logged request's time (the last window takes the rest)."""
        last = [self.rows.time[end - 1] for end in ends]
        placed: list[list[tuple[str, list[Any]]]] = [[] for _ in ends]
        for time, request_id, served in self.answers:
            if placed:
                placed[min(bisect.bisect_left(last, time), len(placed) - 1)].append((request_id, served))
        return placed

    def labelled_items(self) -> int:
        """Logged items (with their inputs kept) that feedback labelled: the rows an export writes."""
        count = 0
        for request_id, kept in zip(self.rows.request_id, self.rows.kept, strict=True):
            true = self.truth.get(request_id)
            if not true or kept is None:
                continue
            dropped = set(kept[1:])
            count += sum(1 for i in range(min(kept[0], len(true))) if i not in dropped)
        return count


def _cumulative(counts: np.ndarray, segments: list[Segment]) -> np.ndarray:
    """``counts`` holds, per segment, values up to each request counted from the segment's start:
    made cumulative over the whole range."""
    result = counts.copy()
    carry = np.zeros(len(counts), dtype=np.int64)
    for segment in segments:
        width = segment.hi - segment.lo
        result[:, segment.start : segment.start + width] += carry[:, None]
        if width:
            carry = result[:, segment.start + width - 1].copy()
    return result
