"""Every answered request, sampled or not: the request-id index ``POST /feedback`` is judged against.

The payload log keeps a sample of requests whole (inputs, answers, probabilities), but feedback may
come for any request, so a log also writes a compact ``answer`` line for each request the sample
left out (``serving/payload_record.py``: its id, time and answers, about 110 bytes): the log's files
then name every answered request, and ``conveyor monitor`` joins feedback with all of them.  That
index lives in the log's files, so it is kept as long as they are (their retention).

In memory, each log keeps the ids it can judge feedback against: the requests it answered itself
(added on the request's path: one dict insert) and every id in its folder's files, read as they
grow (a restarted server reads what its predecessor wrote; several workers read each other's
files).  For each id, how many items it answered (a label list of another length is refused) and
whether feedback already labelled it.  At most ``REMEMBERED`` ids (the most recent) are held,
about 150 bytes each (measured: 74 MB for 500,000); an id older than that, or one no log here
ever saw, is ``unknown``.

What feedback means, the same at a server and at a router (``serving/feedback.py``): an entry for
an answered request not yet labelled is ``accepted`` and written; one for an id already labelled is
a ``duplicate`` (the first label wins; the later one is not written); one for an id never answered
is ``unknown`` (not written).  The answer counts each, and says per entry which it was.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import orjson

REMEMBERED = 500_000  # answered request ids held in memory per log, the most recent (about 150 bytes each)


class AnsweredIndex:
    """Request id -> items answered, and which were labelled; bounded; fed by this process and its files."""

    def __init__(self, folder: Path | None, size: int = REMEMBERED) -> None:
        self.folder = folder  # the log's local folder (an S3 log's spool): whose files to read
        self.size = size
        self._items: OrderedDict[str, int] = OrderedDict()
        self._labelled: set[str] = set()
        self._read: dict[Path, int] = {}  # bytes of each file already read
        self._lock = threading.Lock()  # the writer thread refreshes, the event loop judges

    def add(self, request_id: str, items: int) -> None:
        """A request this process answered (on the request's path: cheap, never blocks for long)."""
        self._items[request_id] = items
        if len(self._items) > self.size:
            self._forget()

    def items(self, request_id: str) -> int | None:
        """How many items the request answered; None: no log here saw it."""
        return self._items.get(request_id)

    def labelled(self, request_id: str) -> bool:
        return request_id in self._labelled

    def label(self, request_id: str) -> None:
        self._labelled.add(request_id)

    def _forget(self) -> None:
        with self._lock:
            while len(self._items) > self.size:
                old, _ = self._items.popitem(last=False)
                self._labelled.discard(old)

    def refresh(self) -> None:
        """Read what the folder's files gained since the last call (whole lines only)."""
        if self.folder is None or not self.folder.is_dir():
            return
        with self._lock:
            paths = sorted(self.folder.glob("payloads-*.jsonl*"))
            for path in paths:
                self._read_new(path)
            for gone in set(self._read) - set(paths):  # uploaded, or removed by retention
                del self._read[gone]
        if len(self._items) > self.size:
            self._forget()

    def _read_new(self, path: Path) -> None:
        done = self._read.get(path, 0)
        if done == 0 and path.suffix == ".jsonl" and path.with_name(path.name + ".partial") in self._read:
            done = self._read.pop(path.with_name(path.name + ".partial"))  # the same file, finished since
        try:
            with open(path, "rb") as handle:
                handle.seek(done)
                data = handle.read()
        except OSError:  # renamed (finished) or uploaded and removed meanwhile: read under its new name
            return
        whole = data[: data.rfind(b"\n") + 1]
        self._read[path] = done + len(whole)
        for line in whole.splitlines():
            self._line(line)

    def _line(self, line: bytes) -> None:
        try:
            record = orjson.loads(line)
            request_id = record["request_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return  # a foreign or torn line: monitoring counts those
        if record.get("kind") == "feedback":
            self._labelled.add(request_id)
        elif isinstance(record.get("outputs"), list):
            self._items[request_id] = len(record["outputs"])
            self._items.move_to_end(request_id)
