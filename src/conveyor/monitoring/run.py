"""One monitoring pass: the reference profile, the log read back in windows, each window judged.

Shared by ``conveyor monitor`` (table, JSON, HTML) and anything that acts on drift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor import __version__
from conveyor.atomic import write_atomic
from conveyor.errors import InvalidInput
from conveyor.monitoring.drift import WindowDrift, compare
from conveyor.monitoring.estimate import estimate_served, estimator_for
from conveyor.monitoring.features import EMBEDDING
from conveyor.monitoring.hashed import as_logged
from conveyor.monitoring.logs import LogReader
from conveyor.monitoring.observe import Observer
from conveyor.monitoring.profile import PROFILE_FILE, Profile, stored_profile
from conveyor.monitoring.quality import labelled_rows, served_quality
from conveyor.monitoring.self_check import checked_profile
from conveyor.monitoring.summaries import FORMAT, SummaryStore
from conveyor.monitoring.thresholds import Thresholds
from conveyor.monitoring.window_cache import WindowCache, window_key
from conveyor.monitoring.windows import Logged, Span
from conveyor.serving.payload_hash import hash_key
from conveyor.serving.payload_record import RequestRecord
from conveyor.serving.spec import ResolvedModel


@dataclass
class MonitorResult:
    model: str
    version: str
    profile: Profile
    thresholds: Thresholds
    windows: list[WindowDrift] = field(default_factory=list)
    records: int = 0
    files: int = 0
    unreadable: int = 0
    feedback: int = 0  # feedback entries in the log
    labelled: list[dict[str, Any]] = field(default_factory=list)  # logged items with their true answers, if asked
    labelled_items: int = 0  # logged items that feedback labelled
    span: Span = field(default_factory=Span)  # the times judged and the windows' length
    summaries: dict[str, Any] = field(default_factory=dict)  # the store read: its folder, summaries built
    notes: list[str] = field(default_factory=list)  # what the judgement left out or changed, and why

    @property
    def latest(self) -> WindowDrift | None:
        judged = [w for w in self.windows if w.judged]
        return judged[-1] if judged else None

    @property
    def latest_drifted(self) -> bool:
        """The latest judged window drifted, or its live quality fell below the bound."""
        latest = self.latest
        return bool(latest and (latest.drifted or latest.quality_failed))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "reference": {
                "source": self.profile.source,
                "items": self.profile.items,
                "labelled": self.profile.quality.labelled if self.profile.quality else 0,
                "quality": self.profile.quality.realised if self.profile.quality else None,
                "self_check": self_check_dict(self.profile),
            },
            "thresholds": self.thresholds.model_dump(),
            "records": self.records,
            "files": self.files,
            "unreadable_lines": self.unreadable,
            "drift": self.latest_drifted,
            "windows": [window_dict(w) for w in self.windows],
            "feedback": self.feedback,
            "labelled_items": self.labelled_items,
            "span": self.span.as_dict(),
            "summaries": self.summaries,
            "notes": self.notes,
        }


def window_dict(window: WindowDrift) -> dict[str, Any]:
    """A judged window as JSON-ready data (``dataclasses.asdict`` without its deep copies: a month of
    windows printed per call)."""
    columns = [dict(vars(column)) for column in window.columns]
    return {**vars(window), "columns": columns, "drifted": window.drifted, "drift_share": window.drift_share}


def self_check_dict(profile: Profile) -> dict[str, Any] | None:
    check = profile.self_check
    return None if check is None else {**check.model_dump(), "false_alarm_rate": round(check.rate, 4)}


def export_labelled(rows: list[dict[str, Any]], path: Path) -> int:
    """Write the labelled traffic as CSV (columns: the inputs, the true answer, request_id, time)."""
    import csv
    import io

    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    return len(rows)


def new_reference_profile(
    resolved: ResolvedModel, reference: Path, source: str, report: Callable[[str], None] | None = None
) -> Profile:
    """``reference`` scored by the served model's code and profiled, its false-alarm rate measured;
    a text model's texts embedded too where the MiniLM encoder is installed (else ``report`` says so)."""
    from conveyor import minilm

    missing = minilm.missing_reason() if resolved.spec.task.takes_text else ""
    if missing and report is not None:
        report(f"reference profile: no embedding drift ({missing})")
    observer = Observer(resolved, embeddings=resolved.spec.task.takes_text and not missing)
    columns, quality = observer.score_reference(reference)
    return checked_profile(columns, source=source, quality=quality)


def reference_profile(resolved: ResolvedModel, reference: Path | None) -> Profile:
    """``reference`` scored now, else the profile stored with the version."""
    if reference is not None:
        return new_reference_profile(resolved, reference, str(reference))
    stored = resolved.model_path.parent / PROFILE_FILE
    if not stored.is_file():
        raise InvalidInput(
            f"{resolved.spec.name}:{resolved.spec.version} has no reference profile ({PROFILE_FILE}): "
            "register it with --reference FILE, or pass --reference FILE here"
        )
    return stored_profile(stored)


def monitor_log(
    resolved: ResolvedModel,
    destination: str,
    reference: Path | None,
    window: int,
    thresholds: Thresholds,
    embeddings: bool = True,
    span: Span | None = None,
    labelled: bool = False,
) -> MonitorResult:
    """Every window of the log (within ``span``: times and window length) judged, from the summary
    store (``monitoring/summaries.py``: each finished file read once); ``embeddings``: a text model's
    texts by meaning too, where its profile holds their embeddings (up to ``embedding_drift.SAMPLE``
    texts embedded per window); ``labelled``: the labelled items themselves too (read from the log
    files in range), for ``--export-labelled``."""
    span = span or Span()
    profile = reference_profile(resolved, reference)
    observer = Observer(resolved, embeddings=resolved.spec.task.takes_text)  # a summary keeps the texts
    store = SummaryStore(destination, resolved.spec.name, resolved.spec.version)
    result = MonitorResult(resolved.spec.name, resolved.spec.version, profile, thresholds, span=span)
    since, until = span.bounds()
    summaries = list(store.summaries(observer, since, until))
    logged = Logged.of(summaries, since, until)
    result.files, result.unreadable = len(summaries), sum(s.unreadable for s in summaries)
    result.summaries = {"folder": str(store.folder), "built": store.built, "removed": store.removed}
    truth = logged.truth
    hashed = logged.hashed_fields()
    if hashed:  # served with --log-hash: judge those fields as the log keeps them
        profile, result.notes = as_logged(profile, hashed, hash_key())
    if not (embeddings and EMBEDDING in profile.columns):
        profile = profile.model_copy(update={"columns": {k: c for k, c in profile.columns.items() if k != EMBEDDING}})
    task = resolved.spec.task
    estimator: list[Any] = []  # fitted when a window is first judged (a kept one needs none)
    cuts = logged.by_time(span.window_seconds) if span.window_seconds else logged.by_count(window)
    answers = logged.answers_by_window([hi for _, hi in cuts])
    cache = WindowCache(store.folder)
    profiled = hashlib.sha256(profile.model_dump_json().encode()).hexdigest()
    judged_by = [profiled, thresholds.model_dump(), FORMAT, __version__]  # another release judges anew
    for index, ((lo, hi), unsampled) in enumerate(zip(cuts, answers, strict=True), 1):
        evidence = logged.evidence(lo, hi, unsampled)
        key = window_key(judged_by, evidence)
        kept = cache.get(key, index)
        if kept is not None:
            result.windows.append(kept)
            result.records += hi - lo
            continue
        columns, rows = logged.window(lo, hi)
        result.records += len(rows.request_id)
        judged = columns.items >= thresholds.min_items
        joined = [*zip(rows.request_id, rows.served, strict=True), *unsampled]  # sampled or not
        quality = served_quality(joined, truth, resolved.spec.labels, task.regression)
        if quality is not None:
            quality.update(min_labels=thresholds.min_labels, enough_labels=thresholds.enough_labels(quality))
        if not estimator:
            estimator.append(estimator_for(profile.quality))
        judgement = WindowDrift(
            index=index,
            items=columns.items,
            start=rows.time[0],
            end=rows.time[-1],
            judged=judged,
            columns=compare(profile, columns, thresholds) if judged else [],
            quality=quality,
            quality_failed=judged and thresholds.quality_failed(quality),
            estimated=estimate_served(estimator[0], rows.probabilities, rows.inputs, rows.served),
        )
        cache.put(key, judgement)
        result.windows.append(judgement)
    cache.prune()
    result.summaries.update(windows_kept=cache.hits, windows_judged=cache.misses)
    result.feedback, result.labelled_items = len(truth), logged.labelled_items()
    if labelled:
        names = {s.name for s in summaries}
        reader = LogReader(destination, resolved.spec.name, resolved.spec.version)
        requests = [
            record
            for log in store.files()
            if log.name in names
            for record in reader.parse(store.read(log))
            if isinstance(record, RequestRecord) and record.request_id in truth and span.holds(record.time)
        ]
        result.labelled = labelled_rows(requests, truth, task.takes_text, task.answer_field)
    return result
