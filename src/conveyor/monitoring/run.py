"""One monitoring pass: the reference profile, the log read back in windows, each window judged.

Shared by ``conveyor monitor`` (table, JSON, HTML) and anything that acts on drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conveyor.atomic import write_atomic
from conveyor.errors import InvalidInput
from conveyor.monitoring.drift import WindowDrift, compare
from conveyor.monitoring.estimate import estimate_window, estimator_for
from conveyor.monitoring.features import EMBEDDING
from conveyor.monitoring.hashed import as_logged, hashed_fields
from conveyor.monitoring.logs import LogReader
from conveyor.monitoring.observe import Observer, chunked
from conveyor.monitoring.profile import PROFILE_FILE, Profile
from conveyor.monitoring.quality import feedback_of, labelled_rows, window_quality
from conveyor.monitoring.self_check import checked_profile
from conveyor.monitoring.thresholds import Thresholds
from conveyor.serving.payload_hash import hash_key
from conveyor.serving.payload_record import AnswerRecord, RequestRecord
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
    labelled: list[dict[str, Any]] = field(default_factory=list)  # logged items with their true answers
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
            "windows": [{**asdict(w), "drifted": w.drifted, "drift_share": w.drift_share} for w in self.windows],
            "feedback": self.feedback,
            "labelled_items": len(self.labelled),
            "notes": self.notes,
        }


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
    return Profile.load(stored)


def monitor_log(
    resolved: ResolvedModel,
    destination: str,
    reference: Path | None,
    window: int,
    thresholds: Thresholds,
    embeddings: bool = True,
) -> MonitorResult:
    """Every window of the log judged; ``embeddings``: a text model's texts by meaning too, where its
    profile holds their embeddings (up to ``embedding_drift.SAMPLE`` texts embedded per window)."""
    profile = reference_profile(resolved, reference)
    observer = Observer(resolved, embeddings=embeddings and EMBEDDING in profile.columns)
    reader = LogReader(destination, resolved.spec.name, resolved.spec.version)
    result = MonitorResult(resolved.spec.name, resolved.spec.version, profile, thresholds)
    everything = list(reader.records())  # feedback comes after its request: gather it first
    truth = feedback_of(everything)
    requests = [r for r in everything if isinstance(r, RequestRecord)]
    hashed = hashed_fields(requests)
    if hashed:  # served with --log-hash: judge those fields as the log keeps them
        profile, result.notes = as_logged(profile, hashed, hash_key())
    task = resolved.spec.task
    estimator = estimator_for(profile.quality)
    windows = list(chunked(requests, observer, window))
    unsampled = answers_by_window([r for r in everything if isinstance(r, AnswerRecord)], windows)
    for index, ((columns, records), answers) in enumerate(zip(windows, unsampled, strict=True), 1):
        result.records += len(records)
        judged = columns.items >= thresholds.min_items
        joined = [*records, *answers]  # feedback joins every answered request, sampled or not
        quality = window_quality(joined, truth, resolved.spec.labels, task.regression, resolved.spec.boolean_label)
        if quality is not None:
            quality.update(min_labels=thresholds.min_labels, enough_labels=thresholds.enough_labels(quality))
        result.windows.append(
            WindowDrift(
                index=index,
                items=columns.items,
                start=records[0].time,
                end=records[-1].time,
                judged=judged,
                columns=compare(profile, columns, thresholds) if judged else [],
                quality=quality,
                quality_failed=judged and thresholds.quality_failed(quality),
                estimated=estimate_window(estimator, records),
            )
        )
    result.files, result.unreadable, result.feedback = reader.files, reader.unreadable, len(truth)
    result.labelled = labelled_rows(requests, truth, task.takes_text, task.answer_field)
    return result


def answers_by_window(answers: list[AnswerRecord], windows: list[tuple[Any, list[RequestRecord]]]) -> list[list[Any]]:
    """The unsampled requests' ``answer`` lines placed in the window whose time they fall in: up to
    its last logged request's time (the last window takes the rest).  Times are ISO 8601 in UTC
    with milliseconds, so they compare as strings."""
    import bisect

    ends = [records[-1].time for _, records in windows]
    placed: list[list[Any]] = [[] for _ in windows]
    for answer in answers:
        if placed:
            placed[min(bisect.bisect_left(ends, answer.time), len(placed) - 1)].append(answer)
    return placed
