"""Where the payload log's lines go: files in a folder, or files spooled locally and uploaded to S3.

A file being written ends in ``.partial`` and is renamed when it rotates (``rotate_bytes`` /
``rotate_seconds``) or the log closes, so a reader only ever sees whole files.  Its writer holds
an exclusive ``flock`` on it while it is open (``conveyor/filelock.py``): the lock goes with the
process, so a ``.partial`` file that nobody holds was left by a killed server.  A log that starts
(``adopt``) finishes such files: it cuts a torn last line back to the last whole one and renames
them, so their records (and the feedback they hold) reach monitoring.

The S3 sink keeps a finished file in its spool (``$CONVEYOR_HOME/payload-spool/``, one folder
per destination, model and version, so a restarted server finds what its predecessor left) until
``put_object`` succeeded: botocore retries a failed call a few times (its ``standard`` mode:
exponential backoff with jitter, for a blip of seconds), and a file that still fails waits and is
tried again, the wait doubling from ``FIRST_RETRY_S`` up to ``LAST_RETRY_S`` (an outage of minutes
or hours).  The spool is bounded (``MAX_SPOOL_BYTES`` per version): past it the oldest waiting
file is dropped and its records counted (``store_error``).  A record counts as ``written`` once
its file is uploaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from prometheus_client import Gauge

from conveyor.home import conveyor_home

log = logging.getLogger("conveyor.serving.payloads")

PARTIAL = ".partial"
FIRST_RETRY_S = 1.0
LAST_RETRY_S = 60.0
MAX_SPOOL_BYTES = 1024 * 1024 * 1024
SPOOLED = Gauge(
    "conveyor_payload_log_spooled_records",
    "Payload log records in finished files waiting for their upload (S3).",
    ["model", "version"],
    multiprocess_mode="livesum",
)


Finished = Callable[[Path, int, "IO[bytes] | None"], object]  # a finished file, its records, its held lock


class FileSink:
    """JSON Lines files in a folder, rotated by size and age; a failed write drops and counts."""

    RETRY_AFTER_S = 5.0

    def __init__(self, folder: Path, count: Callable[..., None], on_finished: Finished | None = None) -> None:
        self.folder, self.count, self.on_finished = folder, count, on_finished
        self.rotate_bytes, self.rotate_seconds = 16 * 1024 * 1024, 300.0
        self._file: Any = None
        self._path: Path | None = None
        self._opened = 0.0
        self._written = self._records = self._sequence = 0
        self._failed_at = 0.0
        self.rotated: Callable[[], object] | None = None  # after each file is finished: retention

    def adopt(self) -> int:
        """Finish the ``.partial`` files killed writers left here (nobody holds their lock); how many."""
        adopted = 0
        for path in sorted(self.folder.glob(f"payloads-*.jsonl{PARTIAL}")):
            if path == self._path:
                continue
            records = _finish_orphan(path)
            if records is None:
                continue
            adopted += 1
            log.warning("payload log: adopted %s (%d records) left by a stopped server", path.name, records)
            if self.on_finished is not None:  # a local file's records were counted as they were written
                self.on_finished(path.with_suffix(""), records, None)
        return adopted

    def write(self, line: bytes) -> None:
        if self._failed_at and time.monotonic() - self._failed_at < self.RETRY_AFTER_S:
            self.count("store_error")
            return
        try:
            if self._file is None:
                self._open()
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            self._fail(exc)
            return
        self._written += len(line)
        self._records += 1
        if self.on_finished is None:  # an uploaded file's records count once they are uploaded
            self.count("written")
        if self._written >= self.rotate_bytes:
            self.finish()

    def tick(self) -> None:
        if self._file is not None and time.monotonic() - self._opened >= self.rotate_seconds:
            self.finish()

    def finish(self) -> None:
        """Close the open file and give it its final name (a reader sees whole files only)."""
        if self._file is None or self._path is None:
            return
        path, records, handle = self._path, self._records, self._file
        final = path.with_suffix("")  # drop .partial
        try:
            path.rename(final)  # renamed while its lock is held: no adopter can take it meanwhile
        except OSError as exc:
            self._fail(exc)
            return
        self._file, self._path, self._written, self._records = None, None, 0, 0
        if self.rotated is not None:
            with contextlib.suppress(OSError):
                self.rotated()
        if self.on_finished is not None:
            self.on_finished(final, records, handle)  # its lock goes on to the uploader
        else:
            with contextlib.suppress(OSError):
                handle.close()  # every line was flushed as it was written: nothing is lost here

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._path = self.folder / f"payloads-{stamp}-{os.getpid()}-{self._sequence:04d}.jsonl{PARTIAL}"
        self._file = open(self._path, "ab")  # noqa: SIM115 (held open across writes)
        fcntl.flock(self._file, fcntl.LOCK_EX)  # "a live writer has this one": see adopt()
        self._opened = time.monotonic()
        self._failed_at = 0.0

    def _fail(self, exc: OSError) -> None:
        """Count the record that failed, keep the file's whole lines (cut back to the last good
        byte), and pause writes for a while: a full disk is not retried on every request."""
        if not self._failed_at:
            log.warning("payload log: cannot write to %s (%s); records are dropped and counted", self.folder, exc)
        self.count("store_error")
        path, records, good = self._path, self._records, self._written
        with contextlib.suppress(OSError):
            if self._file is not None:
                self._file.close()  # its buffer may fail to flush again: the file is closed all the same
        self._file, self._path, self._written, self._records = None, None, 0, 0
        self._failed_at = time.monotonic()
        if path is None:
            return
        try:
            if not records:
                path.unlink()
                return
            os.truncate(path, good)
            final = path.with_suffix("")
            path.rename(final)
        except OSError:
            return
        if self.on_finished is not None:
            self.on_finished(final, records, None)


def _finish_orphan(path: Path) -> int | None:
    """A ``.partial`` file nobody holds: cut to its last whole line and renamed; its record count
    (None: a live writer holds it, another adopter took it first, or it cannot be read)."""
    try:
        with open(path, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer holds it
            data = handle.read()
            whole = data[: data.rfind(b"\n") + 1]
            if len(whole) < len(data):
                handle.truncate(len(whole))  # the line a kill tore: the lines before it are whole
            if not whole:
                path.unlink()
                return None
            path.rename(path.with_suffix(""))
            return whole.count(b"\n")
    except (FileNotFoundError, BlockingIOError):
        return None
    except OSError as exc:
        log.warning("payload log: cannot adopt %s (%s)", path, exc)
        return None


@dataclass(eq=False)
class _Waiting:
    path: Path
    records: int
    handle: IO[bytes]  # its lock, held while it waits: another worker's adopt() leaves it alone
    attempts: int = 0
    due: float = 0.0


class S3Sink(FileSink):
    """Spooled files uploaded to ``s3://bucket/prefix/<model>/<version>/``, each kept until uploaded."""

    def __init__(self, url: str, model: str, version: str, count: Callable[..., None]) -> None:
        from conveyor.serving.payload_upload import S3Uploader  # boto3 only where S3 is asked for

        self.uploader = S3Uploader(url, f"{model}/{version}")
        self.waiting: list[_Waiting] = []
        self.spooled = SPOOLED.labels(model=model, version=version)
        spool = conveyor_home() / "payload-spool" / hashlib.sha256(url.encode()).hexdigest()[:16] / model / version
        super().__init__(spool, count, self._finished)

    def adopt(self) -> int:
        """Also take up the finished files a stopped server could not upload (nobody holds their lock)."""
        adopted = super().adopt()
        taken = {w.path for w in self.waiting}
        for path in sorted(self.folder.glob("payloads-*.jsonl")):
            if path not in taken:
                with contextlib.suppress(OSError):
                    adopted += self._finished(path, path.read_bytes().count(b"\n"), None)
        return adopted

    def tick(self) -> None:
        super().tick()
        now = time.monotonic()
        for waiting in [w for w in self.waiting if w.due <= now]:
            self._try(waiting)

    def _finished(self, path: Path, records: int, handle: IO[bytes] | None) -> int:
        """Upload a finished file, or keep it waiting; 0 where another process holds it."""
        if handle is None:
            handle = open(path, "rb")  # noqa: SIM115 (held, with its lock, until the file is uploaded)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return 0
        waiting = _Waiting(path, records, handle)
        self.waiting.append(waiting)
        self.spooled.inc(records)
        self._bound()
        self._try(waiting)
        return 1

    def _try(self, waiting: _Waiting) -> None:
        try:
            self.uploader.upload(waiting.path)
        except Exception as exc:  # botocore raises many kinds; each leaves the file to try again
            waiting.attempts += 1
            wait = min(FIRST_RETRY_S * 2 ** (waiting.attempts - 1), LAST_RETRY_S)
            waiting.due = time.monotonic() + wait
            log.warning("payload log: upload of %s failed (%s); kept, next try in %.0f s", waiting.path.name, exc, wait)
            return
        with contextlib.suppress(OSError):
            waiting.path.unlink()  # unlinked before its lock goes: no other worker uploads it again
        self._done(waiting)
        self.count("written", waiting.records)

    def _done(self, waiting: _Waiting) -> None:
        if waiting in self.waiting:
            self.waiting.remove(waiting)
            self.spooled.dec(waiting.records)
        with contextlib.suppress(OSError):
            waiting.handle.close()

    def _bound(self) -> None:
        """Past ``MAX_SPOOL_BYTES`` of waiting files, drop the oldest (counted): the disk is not the log."""
        sizes = {w.path: _size(w.path) for w in self.waiting}
        while len(self.waiting) > 1 and sum(sizes[w.path] for w in self.waiting) > MAX_SPOOL_BYTES:
            oldest = self.waiting[0]
            log.warning("payload log: spool over %d bytes; %s dropped", MAX_SPOOL_BYTES, oldest.path.name)
            with contextlib.suppress(OSError):
                oldest.path.unlink()
            self._done(oldest)
            self.count("store_error", oldest.records)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def sink_for(destination: str, model: str, version: str, count: Callable[..., None]) -> FileSink:
    """The sink for a destination: a folder, or ``s3://bucket/prefix``."""
    if destination.startswith("s3://"):
        return S3Sink(destination, model, version, count)
    return FileSink(Path(destination).expanduser() / model / version, count)
