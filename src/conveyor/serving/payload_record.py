"""The payload log's record: one versioned format, written by servers and routers, read by monitoring.

A payload log is read months after it was written (drift, live quality, labelled exports for a
retraining), often by a newer Conveyor than the one that wrote it, so what a line holds is defined
once, here: a server's writer (``serving/payloads.py``) and a router's (``router/payload_log.py``)
both build a ``RequestRecord``, ``POST /feedback`` a ``FeedbackRecord``, and monitoring reads every
line through ``read_record``, which knows each version ever written.

Versions (the ``schema`` field):

* 1, written before the field existed: a server's request line has ``probabilities`` (classifiers)
  and no ``backend``; a router's has ``backend`` and no ``probabilities``; the first files had no
  ``kind`` either (every line was a request).  Read with the missing fields as null.
* 2: ``schema`` added, and every request line carries every field, null where its writer has
  nothing to say (a server's ``backend``, a router's ``probabilities``).  A feedback line keeps
  only the answers it has (``labels`` or ``values``), as before.
* 3: the ``answer`` line: a request the sample left out, as the request-id index keeps it
  (``serving/answered.py``: its id, time and answers, no inputs), so feedback joins every
  answered request.  A version-2 reader counts these lines as unreadable and reads the rest.

A line of a newer version reads as far as this version knows it (unknown fields are ignored).

Writing happens on the log's writer thread, beside the server's event loop: orjson serialises a
dataclass natively, from its ``__dict__`` (which is why these have no ``__slots__``: orjson's
slotted path is several times slower), so a record costs about what the dict built by hand did
(``benchmarks/serving/payload_record.py``: about a microsecond more, for calling the
constructor).  Reading validates each line (pydantic, which reads these dataclasses as they are),
so a torn or foreign line is counted, not trusted.
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, TypeAdapter

SCHEMA_VERSION = 3
UNVERSIONED = 1  # the lines written before the version field


def record_time(at: float | None = None) -> str:
    """A record's ``time``: UTC, ISO 8601, milliseconds (``at``: seconds since the epoch, else now)."""
    return datetime.fromtimestamp(clock.time() if at is None else at, UTC).isoformat(timespec="milliseconds")


@dataclass(kw_only=True)
class RequestRecord:
    """One answered request (several items for a batch request), as the client got its answer."""

    schema: int = SCHEMA_VERSION
    kind: Literal["request"] = "request"
    time: str
    request_id: str
    model: str
    version: str
    backend: str | None = None  # a router's: the backend that answered
    route: str
    latency_ms: float
    inputs: list[Any] | None  # per item, scrubbed (--log-drop, --log-hash); None: not kept
    outputs: list[Any]  # per item, the classic answer
    probabilities: list[list[float]] | None = None  # a server's classifier: per item, per label
    omitted: str | None = None  # why ``inputs`` is None although the request had some

    def json_line(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


@dataclass(kw_only=True)
class AnswerRecord:
    """An answered request the sample did not log: what feedback needs to join it (no inputs, no scores)."""

    schema: int = SCHEMA_VERSION
    kind: Literal["answer"] = "answer"
    time: str
    request_id: str
    outputs: list[Any]  # per item, the classic answer

    probabilities = None  # read like a router's request record: the answer is all there is

    def json_line(self) -> bytes:
        return orjson.dumps(self) + b"\n"


@dataclass(kw_only=True)
class FeedbackRecord:
    """The true answers of a logged request, per item (``POST /feedback``): labels, or a regressor's values."""

    schema: int = SCHEMA_VERSION
    kind: Literal["feedback"] = "feedback"
    time: str
    request_id: str
    labels: list[str] | None = None
    values: list[float] | None = None

    @property
    def truth(self) -> list[Any] | None:
        return self.labels if self.labels is not None else self.values

    def json_line(self) -> bytes:
        answers = {"labels": self.labels} if self.labels is not None else {"values": self.values}
        line = {"schema": self.schema, "kind": self.kind, "time": self.time, "request_id": self.request_id}
        return orjson.dumps({**line, **answers}) + b"\n"


PayloadRecord = RequestRecord | AnswerRecord | FeedbackRecord
Answered = RequestRecord | AnswerRecord  # a line that says a request was answered
_READER: TypeAdapter[PayloadRecord] = TypeAdapter(Annotated[PayloadRecord, Field(discriminator="kind")])


def read_record(line: str | bytes) -> PayloadRecord:
    """One line of a payload log, of any version; a ``ValueError`` for a line that is not one."""
    data = orjson.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"a payload log line is a JSON object, not {type(data).__name__}")
    data.setdefault("kind", "request")
    data.setdefault("schema", UNVERSIONED)
    return _READER.validate_python(data)
