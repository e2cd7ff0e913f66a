"""The payload log's sinks keep what they were given: a killed server's ``.partial`` files are adopted
by the next one to start (cut to their whole lines), a file a live writer holds is left alone, and a
spooled file a stopped server could not upload is uploaded by the next.  In-process: adoption is what
a payload log does first when it starts (``payload_sinks.FileSink.adopt``); the S3 outage itself is
``tests/test_monitoring.py``'s, through a real server."""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

import pytest

from conveyor.monitoring.logs import LogReader
from conveyor.serving.payload_record import FeedbackRecord, RequestRecord, record_time
from conveyor.serving.payloads import PayloadLog, PayloadLogConfig


def _request(number: int) -> bytes:
    record = RequestRecord(
        time=record_time(), request_id=f"r{number}", model="m", version="1", route="/predict", latency_ms=1.0,
        inputs=[{"x": number}], outputs=[{"label": "high"}],
    )  # fmt: skip
    return record.json_line()


def _feedback(number: int) -> bytes:
    return FeedbackRecord(time=record_time(), request_id=f"r{number}", labels=["low"]).json_line()


def _left_by_a_killed_server(folder: Path, name: str, records: int) -> Path:
    """A ``.partial`` file as a SIGKILL leaves it: whole lines, then half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"payloads-20260101T000000-{name}-0001.jsonl.partial"
    lines = b"".join(_request(n) + _feedback(n) for n in range(records))
    path.write_bytes(lines + _request(records)[:40])
    return path


def test_a_started_log_adopts_a_killed_servers_partial_file_and_leaves_a_live_ones(tmp_path: Path) -> None:
    folder = tmp_path / "logs" / "m" / "1"
    orphan = _left_by_a_killed_server(folder, "111", records=5)
    live = _left_by_a_killed_server(folder, "222", records=2)
    with open(live, "rb") as held:  # another server, still running, holds its open file's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        log = PayloadLog(PayloadLogConfig(str(tmp_path / "logs"), sample=1.0), "m", "1", logits=False, classifier=True)
        log.close()
        assert live.exists(), "a file a live writer holds was taken"
    assert not orphan.exists()
    reader = LogReader(str(tmp_path / "logs"), "m", "1")
    records = list(reader.records())
    assert reader.unreadable == 0 and reader.files == 1  # the torn line cut, the rest whole and read
    assert [r.request_id for r in records if isinstance(r, RequestRecord)] == [f"r{n}" for n in range(5)]
    assert [r.request_id for r in records if isinstance(r, FeedbackRecord)] == [f"r{n}" for n in range(5)]


def test_a_started_log_uploads_what_a_stopped_server_left_in_its_s3_spool(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conveyor_home: Path
) -> None:
    import boto3

    monkeypatch.setenv("CONVEYOR_S3_ENDPOINT_URL", s3_endpoint)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="spooled")
    destination = "s3://spooled/prod"
    spool = conveyor_home / "payload-spool" / hashlib.sha256(destination.encode()).hexdigest()[:16] / "m" / "1"
    _left_by_a_killed_server(spool, "333", records=3)  # killed while writing
    spool.joinpath("payloads-20260101T000000-444-0002.jsonl").write_bytes(_request(7))  # its upload had failed
    log = PayloadLog(PayloadLogConfig(destination, sample=1.0), "m", "1", logits=False, classifier=True)
    log.close()
    reader = LogReader(destination, "m", "1")
    records = list(reader.records())
    assert reader.files == 2 and reader.unreadable == 0
    assert sorted(r.request_id for r in records if isinstance(r, RequestRecord)) == ["r0", "r1", "r2", "r7"]
    assert not list(spool.iterdir()), "an uploaded file stays in the spool"
