"""The summary store: each finished payload log file read once, kept as what monitoring needs of it.

``conveyor monitor``, the pipeline's drift trigger and the dashboard judge the same log again and
again, while a rotated file never changes.  So each finished file is summarised once, the first
time anything judges its version, into ``.summaries/<file>.json`` beside the log (for an S3 log,
or a folder this process cannot write, under ``$CONVEYOR_HOME/summaries/``), and a later call
reads only the files that rotated since.  A summary is valid while its file has the same name,
size and modification time (an S3 object: the same key, size and ETag); it records the file's
sha256 too.  A summary whose file is gone (deleted by a person, or by retention,
``monitoring/retention.py``) is removed with it, so that file drops out of every judgement.  A
summary is written whole or not at all (``atomic.write_atomic``, not flushed to disk: it can be
rebuilt): a crash mid-summary leaves the file unsummarised, and the next call summarises it.
``files.index`` keeps, per file, a time no line of it is later than (its summary's latest line,
or its modification time), so a call with ``--since`` passes over the month's older files by
name alone, without a look at each (a rotated file never changes); without ``--since`` every file
is looked at.

A summary keeps, per logged request, what the judgement reads, already parsed and described
(``monitoring/observe.py``): its time and request id, each watched column's values (numbers,
categories, a text model's texts for embedding drift: the model's tokenizer has already run), the
served answers (what feedback is joined to), the probabilities (CBPE), a regressor's inputs
(DLE); per unsampled ``answer`` line its time, id and answers; the file's feedback; and which
input fields the log holds only as hashes.  It depends on the model version (its features,
labels and tokenizer), not on the reference profile or the thresholds, so ``--reference`` and
every threshold still apply to stored summaries.  Windows, by count or by time, are cut from the
summaries of the files in range (``--since``/``--until``) when judged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from conveyor.atomic import write_atomic
from conveyor.errors import NotFound
from conveyor.extras import needs
from conveyor.monitoring.features import Columns
from conveyor.monitoring.logs import _order
from conveyor.monitoring.observe import Observer
from conveyor.monitoring.quality import served_answers
from conveyor.serving.payload_hash import is_hashed
from conveyor.serving.payload_record import AnswerRecord, FeedbackRecord, RequestRecord, read_record

FORMAT = 1  # a summary of another format is rebuilt
FOLDER = ".summaries"
STALE_SECONDS = 3600  # a temporary file this old was left by a crash, not being written
INDEX = "files.index"  # each summarised file's latest line time: old files are passed over unread, unlooked-at
MAX_HASHES = 1000  # distinct hashes kept per hashed field and file: enough to match a reference's categories


@dataclass(frozen=True)
class LogFile:
    """A finished log file as listed: what identifies its content without reading it."""

    name: str  # the file name (payloads-<time>-<pid>-<n>.jsonl)
    size: int
    stamp: str  # modification time in ns (a local file) or ETag (an S3 object)
    location: str  # the path or s3 key
    modified: float = 0.0  # when it was last written (seconds since the epoch): none of its lines is later

    @property
    def key(self) -> list[Any]:
        return [self.name, self.size, self.stamp]

    @property
    def started(self) -> str:
        """The time in the file's name, as ``YYYY-MM-DDTHH:MM:SS`` (its first record is no earlier)."""
        stamp = _order(self.name)[0]
        return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}" if stamp else ""


@dataclass
class FileSummary:
    """What monitoring reads of one finished log file (see the module's docstring)."""

    name: str
    key: list[Any]
    digest: str
    unreadable: int = 0
    first: str = ""  # the earliest and latest time of any line
    last: str = ""
    # per request: time, request_id, served, probabilities, kept ([items, positions dropped] or None), inputs
    requests: dict[str, list[Any]] = field(default_factory=dict)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> kind, side, values, ends
    answers: dict[str, list[Any]] = field(default_factory=dict)  # time, request_id, served
    feedback: list[list[Any]] = field(default_factory=list)  # [request_id, truth], first per id
    hashed: dict[str, list[Any]] = field(default_factory=dict)  # field -> [all hashed, distinct hashes]

    def to_json(self) -> bytes:
        return orjson.dumps({"format": FORMAT, **self.__dict__})

    @classmethod
    def from_json(cls, data: bytes) -> FileSummary | None:
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
            return None
        return cls(**raw)


def summarise(log: LogFile, data: bytes, observer: Observer) -> FileSummary:
    """One file's lines, parsed and described once."""
    spec = observer.spec
    regression = spec.task.regression
    summary = FileSummary(log.name, log.key, "sha256:" + hashlib.sha256(data).hexdigest())
    requests: dict[str, list[Any]] = {"time": [], "request_id": [], "served": [], "probabilities": [], "kept": []}
    if regression:
        requests["inputs"] = []
    answers: dict[str, list[Any]] = {"time": [], "request_id": [], "served": []}
    columns = Columns()
    ends: dict[str, list[int]] = {}
    seen_feedback: set[str] = set()
    times: list[str] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = read_record(line)
        except ValueError:
            summary.unreadable += 1
            continue
        times.append(record.time)
        if isinstance(record, FeedbackRecord):
            if record.truth is not None and record.request_id not in seen_feedback:
                seen_feedback.add(record.request_id)
                summary.feedback.append([record.request_id, record.truth])
            continue
        served = served_answers(record, spec.labels, regression, spec.boolean_label)
        if isinstance(record, AnswerRecord):
            answers["time"].append(record.time)
            answers["request_id"].append(record.request_id)
            answers["served"].append(served)
            continue
        requests["time"].append(record.time)
        requests["request_id"].append(record.request_id)
        requests["served"].append(served)
        requests["probabilities"].append(record.probabilities)
        inputs = record.inputs
        requests["kept"].append(
            None if inputs is None else [len(inputs), *(i for i, x in enumerate(inputs) if x is None)]
        )
        if regression:
            requests["inputs"].append(record.inputs)
        _note_hashed(summary.hashed, record)
        observer.add_record(columns, record)
        count = len(requests["time"])
        for name, column in columns.by_name.items():
            column_ends = ends.get(name)
            if column_ends is None:  # a column first seen in this request: none of its values before
                column_ends = ends[name] = [0] * (count - 1)
            column_ends.append(len(column.values))
    summary.first, summary.last = (min(times), max(times)) if times else ("", "")
    summary.requests, summary.answers = requests, answers
    summary.columns = {
        name: {"kind": c.kind, "side": c.side, "values": c.values, "ends": ends[name]}
        for name, c in columns.by_name.items()
    }
    return summary


def _note_hashed(hashed: dict[str, list[Any]], record: RequestRecord) -> None:
    """Per input field: whether every logged value is a hash, and (up to ``MAX_HASHES``) which."""
    for item in record.inputs or []:
        pairs = item.items() if isinstance(item, dict) else [("text", item)] if isinstance(item, str) else []
        for name, value in pairs:
            if value is None:
                continue
            entry = hashed.setdefault(name, [True, []])
            if entry[0] and is_hashed(value):
                if len(entry[1]) < MAX_HASHES and str(value) not in entry[1]:
                    entry[1].append(str(value))
            else:
                entry[0], entry[1] = False, []


class SummaryStore:
    """The finished files of one version's log, each with its summary (built when missing)."""

    def __init__(self, destination: str, model: str, version: str) -> None:
        self.destination, self.model, self.version = destination, model, version
        self.s3 = destination.startswith("s3://")
        self.log_folder = None if self.s3 else Path(destination).expanduser() / model / version
        self.folder = self._folder()
        self.built = 0  # summaries written by this store
        self.removed = 0  # summaries of files that are gone, removed

    def _folder(self) -> Path:
        if self.log_folder is not None and os.access(self.log_folder, os.W_OK):
            return self.log_folder / FOLDER
        from conveyor.home import conveyor_home

        where = hashlib.sha256(self.destination.encode()).hexdigest()[:16]
        return conveyor_home() / "summaries" / where / self.model / self.version

    def files(self) -> list[LogFile]:
        """The finished files, in time order (``.partial`` files are still being written)."""
        return sorted(self._listed(), key=lambda f: _order(f.name))

    def _listed(self) -> list[LogFile]:
        """The finished files, in no order."""
        if self.s3:
            return self._s3_files()
        assert self.log_folder is not None
        if not self.log_folder.is_dir():
            raise NotFound(
                f"no payload log for {self.model}:{self.version} under {self.destination} ({self.log_folder})"
            )
        found = []
        with os.scandir(self.log_folder) as entries:  # a month of 5-minute files is 8,640: no Path per file
            for entry in entries:
                name = entry.name
                if not (name.startswith("payloads-") and name.endswith(".jsonl")):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # removed by retention meanwhile
                    continue
                found.append(LogFile(name, stat.st_size, str(stat.st_mtime_ns), entry.path, stat.st_mtime))
        return found

    def _s3(self) -> tuple[Any, str, str]:
        with needs("s3", "payload logs on S3"):
            import boto3

        parsed = urlparse(self.destination)
        prefix = "/".join(p for p in (parsed.path.strip("/"), self.model, self.version) if p) + "/"
        endpoint = os.environ.get("CONVEYOR_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        return boto3.client("s3", endpoint_url=endpoint), parsed.netloc, prefix

    def _s3_files(self) -> list[LogFile]:
        client, bucket, prefix = self._s3()
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith(".jsonl") and "/" not in key[len(prefix) :]:
                    name = key.rsplit("/", 1)[-1]
                    etag, written = str(item.get("ETag", "")).strip('"'), item["LastModified"].timestamp()
                    found.append(LogFile(name, int(item["Size"]), etag, key, written))
        if not found:
            raise NotFound(f"no payload log for {self.model}:{self.version} under {self.destination}")
        return sorted(found, key=lambda f: _order(f.name))

    def read(self, log: LogFile) -> bytes:
        if not self.s3:
            return Path(log.location).read_bytes()
        client, bucket, _ = self._s3()
        body: bytes = client.get_object(Bucket=bucket, Key=log.location)["Body"].read()
        return body

    def _path(self, log: LogFile) -> Path:
        return self.folder / f"{log.name}.json"

    def summaries(
        self, observer: Observer, since: str | None = None, until: str | None = None
    ) -> Iterator[FileSummary]:
        """The summary of every finished file that may hold a line from ``since`` to ``until``
        (ISO times; None: no bound), built where missing or stale; summaries of files that are
        gone are removed.  A file last written before ``since``, or named for a moment after
        ``until``, is not read at all: a first ``--since 1d`` reads a day of a month's log."""
        if self.s3 or since is None:
            files = self._listed()
            self.prune({f.name for f in files})
            index: dict[str, str] = {}
        else:  # a file whose summary ended before ``since`` is not even looked at (finished files do not change)
            names = self._names()
            self.prune(set(names))
            index = self._index(set(names))
            files = self._stat([n for n in names if not (index.get(n) and index[n] < since)])
        # a file last written a millisecond or more before ``since`` holds no line from then on
        before = None if since is None else _seconds(since) - 0.001
        known = len(index)
        wanted = []
        for log in files:
            if until is not None and log.started and log.started > until:
                continue
            if before is not None and log.modified and log.modified < before:
                index[log.name] = _iso(log.modified)  # none of its lines is later: passed over unlooked-at next time
                continue
            wanted.append(log)
        for log in sorted(wanted, key=lambda f: _order(f.name)):  # only those in range are put in order
            summary = self._load(log)
            if summary is None:
                summary = summarise(log, self.read(log), observer)
                self._write(log, summary)
            if summary.last:
                index[log.name] = summary.last
            if since is not None and summary.last and summary.last < since:
                continue
            yield summary
        if len(index) != known:
            with contextlib.suppress(OSError):  # a lost index costs a look at each file next time
                write_atomic(self.folder / INDEX, orjson.dumps(index), durable=False)

    def _names(self) -> list[str]:
        """The finished files' names (a local log), without a look at each file."""
        assert self.log_folder is not None
        if not self.log_folder.is_dir():
            raise NotFound(
                f"no payload log for {self.model}:{self.version} under {self.destination} ({self.log_folder})"
            )
        with os.scandir(self.log_folder) as entries:
            return [e.name for e in entries if e.name.startswith("payloads-") and e.name.endswith(".jsonl")]

    def _stat(self, names: list[str]) -> list[LogFile]:
        assert self.log_folder is not None
        found = []
        for name in names:
            path = os.path.join(self.log_folder, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # removed by retention meanwhile
                continue
            found.append(LogFile(name, stat.st_size, str(stat.st_mtime_ns), path, stat.st_mtime))
        return found

    def _index(self, present: set[str]) -> dict[str, str]:
        """Each summarised file's latest line time (``INDEX``), for the files still present."""
        try:
            index = orjson.loads((self.folder / INDEX).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        if not isinstance(index, dict):
            return {}
        return {name: last for name, last in index.items() if name in present and isinstance(last, str)}

    def _load(self, log: LogFile) -> FileSummary | None:
        path = self._path(log)
        try:
            summary = FileSummary.from_json(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError, TypeError):
            return None
        return summary if summary is not None and summary.key == log.key else None

    def _write(self, log: LogFile, summary: FileSummary) -> None:
        try:
            write_atomic(self._path(log), summary.to_json(), durable=False)
        except OSError:
            return  # a store that cannot be written costs a re-read next time, never the judgement
        self.built += 1

    def prune(self, present: set[str]) -> None:
        """Remove the summaries whose log file is gone (and temporary files a crash left)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            orphan = path.name.endswith(".json") and path.name.removesuffix(".json") not in present
            if orphan or (path.name.startswith(".") and _older(path, STALE_SECONDS)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    self.removed += orphan


def _older(path: Path, seconds: float) -> bool:
    import time

    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def _iso(seconds: float) -> str:
    """A moment as the log writes times (UTC, ISO 8601, milliseconds): the two compare as strings."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _seconds(moment: str) -> float:
    """An ISO time (UTC unless it says) as seconds since the epoch."""
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(moment)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
