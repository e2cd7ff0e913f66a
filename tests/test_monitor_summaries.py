"""The summary store behind ``conveyor monitor``: incremental, bounded, and never half-written.

Log files in the payload log's own format (``RequestRecord``/``AnswerRecord``/``FeedbackRecord``
lines, as a server writes them) are judged for the risk model against its stored profile: a
re-run after a new rotation reads only the new file and gives the same judgement as a run from
scratch; a deleted file, or one retention expires, drops out with its summary; a crash
mid-summary leaves nothing half-written; windows by time and ``--since``/``--until`` cut the
traffic by its logged times.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.test_monitoring import halves, risk_folder  # noqa: F401  (fixtures)

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PER_FILE = 60  # requests per file, one item each
WINDOW = 50


@pytest.fixture(scope="module")
def profiled(risk_folder: Path, halves, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811  # type: ignore[no-untyped-def]
    """The risk model with a stored reference profile (one half of its data)."""
    from conveyor.monitoring.observe import Observer
    from conveyor.monitoring.profile import PROFILE_FILE, profile_of
    from conveyor.serving.spec import resolve_model
    from tests.tabular_models import risk_frame

    _, reference, _ = halves
    model = tmp_path_factory.mktemp("summaries") / "risk"
    shutil.copytree(risk_folder, model)
    labelled = model.parent / "reference.csv"  # with the true labels: CBPE learns from them
    reference.assign(label=risk_frame()[1][reference.index]).to_csv(labelled, index=False)
    columns, quality = Observer(resolve_model(str(model))).score_reference(labelled)
    profile_of(columns, source="reference.csv", quality=quality).save(model / PROFILE_FILE)
    return model


def _write_file(logs: Path, number: int, rows: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Log file ``number``: ``PER_FILE`` requests a minute apart (every fifth unsampled: an ``answer``
    line), and feedback for the previous file's requests; the request ids."""
    from conveyor.serving.payload_record import AnswerRecord, FeedbackRecord, RequestRecord, record_time

    folder = logs / "risk" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    lines, ids = [], []
    for index in range(PER_FILE):
        at = START + timedelta(minutes=number * PER_FILE + index)
        request_id = f"r{number}-{index}"
        row = rows[(number * PER_FILE + index) % len(rows)]
        high = min(0.95, max(0.05, (row["bmi"] - 15) / 25))
        label = labels[0] if high >= 0.5 else labels[1]
        if index % 5 == 4:
            record: Any = AnswerRecord(
                time=record_time(at.timestamp()), request_id=request_id, outputs=[{"label": label}]
            )
        else:
            record = RequestRecord(
                time=record_time(at.timestamp()),
                request_id=request_id,
                model="risk",
                version="1",
                route="/predict",
                latency_ms=1.0,
                inputs=[row],
                outputs=[{"label": label}],
                probabilities=[[high, 1 - high]],
            )
        lines.append(record.json_line())
        ids.append(request_id)
    if number:  # feedback comes later than its request: this file labels the previous one's
        at = START + timedelta(minutes=(number + 1) * PER_FILE - 1)
        for index in range(0, PER_FILE, 2):
            truth = labels[index % 3 == 0]
            feedback = FeedbackRecord(
                time=record_time(at.timestamp()), request_id=f"r{number - 1}-{index}", labels=[truth]
            )
            lines.append(feedback.json_line())
    stamp = (START + timedelta(minutes=number * PER_FILE)).strftime("%Y%m%dT%H%M%S")
    (folder / f"payloads-{stamp}-1-{number}.jsonl").write_bytes(b"".join(lines))
    return ids


def _judged(model: Path, logs: Path, **span: Any) -> Any:
    from conveyor.monitoring.run import monitor_log
    from conveyor.monitoring.thresholds import Thresholds
    from conveyor.monitoring.windows import span_of
    from conveyor.serving.spec import resolve_model

    given = span_of(span.get("since"), span.get("until"), span.get("window_time"))
    return monitor_log(resolve_model(str(model)), str(logs), None, WINDOW, Thresholds(min_items=20), span=given)


def _verdict(result: Any) -> dict[str, Any]:
    """What the judgement says (the store's own bookkeeping aside)."""
    report = result.as_dict()
    report.pop("summaries")
    return report


@pytest.fixture
def rows(halves) -> list[dict[str, Any]]:  # noqa: F811  # type: ignore[no-untyped-def]
    import json

    return json.loads(halves[2].to_json(orient="records"))


@pytest.fixture
def labels(profiled: Path) -> list[str]:
    from conveyor.serving.spec import resolve_model

    return resolve_model(str(profiled)).spec.labels


def test_a_rerun_after_a_new_rotation_reads_only_the_new_file_and_equals_a_run_from_scratch(
    profiled: Path, rows: list[dict[str, Any]], labels: list[str], tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    for number in range(3):
        _write_file(logs, number, rows, labels)
    first = _judged(profiled, logs)
    assert first.summaries["built"] == 3 and Path(first.summaries["folder"]) == logs / "risk" / "1" / ".summaries"
    again = _judged(profiled, logs)
    assert again.summaries["built"] == 0 and _verdict(again) == _verdict(first)
    assert again.summaries["windows_judged"] == 0  # every window kept: no test, no bootstrap run again

    _write_file(logs, 3, rows, labels)  # a new rotation, with feedback for file 2's requests
    incremental = _judged(profiled, logs)
    assert incremental.summaries["built"] == 1
    assert 0 < incremental.summaries["windows_judged"] < len(incremental.windows)  # the ones the rotation changed
    scratch_logs = tmp_path / "scratch"
    shutil.copytree(logs, scratch_logs, ignore=shutil.ignore_patterns(".summaries"))
    scratch = _judged(profiled, scratch_logs)
    assert scratch.summaries["built"] == 4
    assert _verdict(incremental) == _verdict(scratch)
    assert incremental.records == 4 * PER_FILE * 4 // 5  # sampled requests; the rest are answer lines
    assert incremental.feedback == 3 * PER_FILE // 2
    labelled = [w.quality["labelled"] for w in incremental.windows if w.quality]
    assert sum(labelled) == 3 * PER_FILE // 2  # sampled or not, every labelled request joins its window
    assert any(w.judged and w.estimated for w in incremental.windows)  # CBPE from the stored probabilities


def test_a_deleted_or_expired_file_drops_out_with_its_summary(
    profiled: Path, rows: list[dict[str, Any]], labels: list[str], tmp_path: Path
) -> None:
    from conveyor.monitoring.retention import Retention, apply_retention
    from conveyor.monitoring.summaries import SummaryStore

    logs = tmp_path / "logs"
    for number in range(4):
        _write_file(logs, number, rows, labels)
    folder = logs / "risk" / "1"
    assert _judged(profiled, logs).records == 4 * 48
    files = sorted(folder.glob("payloads-*.jsonl"))
    files[1].unlink()  # deleted by a person
    after = _judged(profiled, logs)
    assert after.records == 3 * 48 and after.summaries["removed"] == 1
    assert sorted(p.name for p in (folder / ".summaries").glob("*.json")) == [
        f"{p.name}.json" for p in files if p != files[1]
    ]

    old = datetime.now(UTC).timestamp() - 40 * 86400
    os.utime(files[0], (old, old))  # finished 40 days ago
    store = SummaryStore(str(logs), "risk", "1")
    assert apply_retention(store, Retention(log_keep_days=30)) == [files[0].name]
    size = files[3].stat().st_size
    assert apply_retention(store, Retention(log_keep_mib=size * 1.5 / 2**20)) == [files[2].name]  # the oldest goes
    assert [p.name for p in (folder / ".summaries").glob("*.json")] == [f"{files[3].name}.json"]
    assert _judged(profiled, logs).records == 48


def test_a_crash_mid_summary_leaves_no_half_state(
    profiled: Path, rows: list[dict[str, Any]], labels: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.monitoring import summaries

    logs = tmp_path / "logs"
    for number in range(3):
        _write_file(logs, number, rows, labels)
    real = summaries.summarise
    calls = []

    def crashing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies while summarising the second file
        return real(*args)

    monkeypatch.setattr(summaries, "summarise", crashing)
    with pytest.raises(KeyboardInterrupt):
        _judged(profiled, logs)
    monkeypatch.setattr(summaries, "summarise", real)
    store = logs / "risk" / "1" / ".summaries"
    assert len(list(store.glob("*.json"))) == 1  # the first file's, whole; none for the others
    (store / ".payloads-left-by-a-kill.json-x").write_text('{"format": 1, "na')  # a write cut short
    stale = store / f"{sorted(p.name for p in (logs / 'risk' / '1').glob('*.jsonl'))[2]}.json"
    stale.write_text('{"format": 1, "name": "torn')  # a torn summary (copied by hand, a full disk)
    resumed = _judged(profiled, logs)
    assert resumed.summaries["built"] == 2
    scratch_logs = tmp_path / "scratch"
    shutil.copytree(logs, scratch_logs, ignore=shutil.ignore_patterns(".summaries"))
    assert _verdict(resumed) == _verdict(_judged(profiled, scratch_logs))


def test_windows_by_time_and_since_until_cut_the_traffic_by_its_logged_times(
    profiled: Path, rows: list[dict[str, Any]], labels: list[str], tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    for number in range(3):  # 09:00 to 11:59, a request a minute
        _write_file(logs, number, rows, labels)
        last = (START + timedelta(minutes=(number + 1) * PER_FILE - 1)).timestamp()
        os.utime(sorted((logs / "risk" / "1").glob("*.jsonl"))[-1], (last, last))  # as its writer left it
    late = _judged(profiled, logs, since="2026-11-02T10:30", until="2026-11-02T11:29:59", window_time="30m")
    assert [(w.start[11:16], w.end[11:16]) for w in late.windows] == [("10:30", "10:58"), ("11:00", "11:28")]
    assert late.files == 2 and late.summaries["built"] == 2  # the 09:00 file, written before --since: not read
    hourly = _judged(profiled, logs, window_time="1h")
    assert [(w.start[11:16], w.end[11:16], w.items) for w in hourly.windows] == [
        ("09:00", "09:58", 48),
        ("10:00", "10:58", 48),
        ("11:00", "11:58", 48),
    ]

    from conveyor.cli.main import app

    result = CliRunner().invoke(
        app,
        ["monitor", str(profiled), "--logs", str(logs), "--json", "--window-time", "1h", "--since", "2026-11-02T10:00"],
    )
    assert result.exit_code in (0, 1), result.output
    assert '"window_seconds": 3600.0' in result.output and '"items": 48' in result.output
    refused = CliRunner().invoke(app, ["monitor", str(profiled), "--logs", str(logs), "--window-time", "soon"])
    assert refused.exit_code == 2 and "invalid duration" in refused.output


def test_a_call_with_since_passes_over_the_older_files_by_name_alone(
    profiled: Path, rows: list[dict[str, Any]], labels: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    for number in range(3):  # 09:00 to 11:59, a request a minute
        _write_file(logs, number, rows, labels)
        last = (START + timedelta(minutes=(number + 1) * PER_FILE - 1)).timestamp()
        os.utime(sorted((logs / "risk" / "1").glob("*.jsonl"))[-1], (last, last))
    oldest = sorted((logs / "risk" / "1").glob("*.jsonl"))[0].name
    first = _judged(profiled, logs, since="2026-11-02T10:30", window_time="30m")
    looked: list[str] = []
    stat = os.stat

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        looked.append(os.path.basename(str(path)))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counted)
    again = _judged(profiled, logs, since="2026-11-02T10:30", window_time="30m")
    assert _verdict(again) == _verdict(first)  # the same judgement
    assert oldest not in looked and any(name.startswith("payloads-") for name in looked)  # the others are looked at


def test_a_server_log_keeps_to_its_size_as_files_rotate(tmp_path: Path) -> None:
    """``serve --log-keep-mib``: the writer removes the oldest finished files (and their summaries)
    each time a file rotates; the file being written is never touched."""
    import functools

    from conveyor.monitoring.retention import Retention, expire
    from conveyor.serving.payload_sinks import FileSink

    folder = tmp_path / "m" / "1"
    sink = FileSink(folder, lambda *_: None)
    sink.rotated = functools.partial(expire, folder, Retention(log_keep_mib=2.5 / 1024))  # 2.5 KiB
    (folder / ".summaries").mkdir(parents=True)
    for _ in range(5):
        sink.write(b"x" * 1023 + b"\n")  # 1 KiB per file
        sink.finish()
        newest = sorted(folder.glob("payloads-*.jsonl"))[-1]
        (folder / ".summaries" / f"{newest.name}.json").write_text("{}")  # as monitor would summarise it
    sink.write(b"y" * 10 + b"\n")  # the open file
    kept = sorted(p.name for p in folder.glob("payloads-*.jsonl"))
    assert [name[-10:] for name in kept] == ["0004.jsonl", "0005.jsonl"]
    assert len(list(folder.glob("*.partial"))) == 1
    assert {p.name for p in (folder / ".summaries").iterdir()} <= {f"{name}.json" for name in kept}


def test_the_table_at_80_columns_shows_times_to_the_second_in_utc_and_no_empty_mmd_column(
    profiled: Path, rows: list[dict[str, Any]], labels: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window's times read as ``2026-11-02 09:00:00`` (the HTML report's form; at 80 columns the
    time under its date), not a folded ISO string
    with milliseconds and an offset; a tabular model has no embedding, so no MMD column takes the width."""
    from conveyor.cli import output
    from conveyor.cli.main import app

    monkeypatch.setattr(output.stdout, "_console", None)
    monkeypatch.setattr(output.stderr, "_console", None)
    logs = tmp_path / "logs"
    _write_file(logs, 0, rows, labels)
    result = CliRunner().invoke(app, ["monitor", str(profiled), "--logs", str(logs), "--window", str(WINDOW),
                                      "--min-items", "20"], env={"COLUMNS": "80"})  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    assert "(UTC)" in result.output
    start = next(line for line in result.output.splitlines() if "2026-11-02" in line)  # the first window's row
    after = result.output.splitlines()[result.output.splitlines().index(start) + 1]
    assert "09:00:00" in after  # its time whole on the next line (80 columns: the date wraps at the space)
    assert "+00:00" not in result.output and "MMD" not in result.output.split("after Benjamini-Hochberg")[-1]
