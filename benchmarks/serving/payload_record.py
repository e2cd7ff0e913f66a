"""What the typed payload-log record costs the log's writer thread and ``conveyor monitor``, run by hand:

    .venv/bin/python -m benchmarks.serving.payload_record [--records 20000] [--rounds 7]

The writer thread shares the interpreter lock with the server's event loop, so each record it
builds and encodes is time the server does not answer in.  Before the record had one definition
(``serving/payload_record.py``), each writer built a dict by hand and orjson encoded it; that
baseline is kept here, as 1987a61's writers built it, and run alongside: a server's tabular and
text records and a router's.  Reading is measured too: ``json.loads`` per line as monitoring read
before, against ``read_record`` (orjson plus pydantic validation) now.  Rounds alternate the order;
the table shows microseconds per record, the best round of each (the least disturbed by whatever
else the machine runs: on a shared machine the median mostly measures the neighbours), and the
ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from benchmarks.serving.__main__ import machine
from conveyor.serving.payload_record import RequestRecord, read_record, record_time

console = Console(width=120)
TABULAR = (
    [{"age": 61, "income": 2100.0, "region": "north", "tenure": 4, "plan": "basic"}],
    [{"label": "high", "probabilities": {"low": 0.3, "high": 0.7}, "high": True}],
    [[0.3, 0.7]],
)
TEXT = (
    ["The delivery was late and the support line never answered my calls", "Great value, works as described"],
    [{"positive": False}, {"positive": True}],
    [[0.880797, 0.119203], [0.047426, 0.952574]],
)


def dict_by_hand(items: list[Any], answers: list[Any], probabilities: list[Any] | None, backend: str | None) -> bytes:
    """The baseline: the record as 1987a61's writers built it (a router's with a backend, no probabilities)."""
    record: dict[str, Any] = {
        "kind": "request",
        "time": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds"),
        "request_id": "3f2b8c1e-request",
        "model": "risk",
        "version": "1",
        "route": "/predict",
        "latency_ms": 0.512,
        "inputs": list(items),
        "outputs": answers,
    }
    if backend is not None:
        record["backend"] = backend
    if probabilities is not None:
        record["probabilities"] = probabilities
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def typed(items: list[Any], answers: list[Any], probabilities: list[Any] | None, backend: str | None) -> bytes:
    """Now: the one record type, as both writers build it."""
    return RequestRecord(
        time=record_time(time.time()),
        request_id="3f2b8c1e-request",
        model="risk",
        version="1",
        backend=backend,
        route="/predict",
        latency_ms=0.512,
        inputs=list(items),
        outputs=answers,
        probabilities=probabilities,
    ).json_line()


def per_record_us(work: Callable[[], Any], records: int) -> float:
    started = time.perf_counter()
    for _ in range(records):
        work()
    return (time.perf_counter() - started) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    console.print(f"machine: {machine()}")
    cases = {
        "server, tabular": (*TABULAR, None),
        "server, text": (*TEXT, None),
        "router, tabular": (TABULAR[0], TABULAR[1], None, "canary"),
    }
    table = Table(title=f"per record, best of {args.rounds} rounds of {args.records:,}")
    for column in ("record", "step", "before us", "now us", "now / before"):
        table.add_column(column, justify="left" if column in ("record", "step") else "right")
    for name, (items, answers, probabilities, backend) in cases.items():
        line = typed(items, answers, probabilities, backend)
        steps: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "write (build + encode)": (
                lambda i=items, a=answers, p=probabilities, b=backend: dict_by_hand(i, a, p, b),
                lambda i=items, a=answers, p=probabilities, b=backend: typed(i, a, p, b),
            ),
            "read (monitoring)": (lambda x=line: json.loads(x), lambda x=line: read_record(x)),
        }
        for step, (before, now) in steps.items():
            timings: dict[str, list[float]] = {"before": [], "now": []}
            for number in range(args.rounds):
                order = [("before", before), ("now", now)]
                for label, work in order if number % 2 == 0 else reversed(order):
                    timings[label].append(per_record_us(work, args.records))
            old, new = min(timings["before"]), min(timings["now"])
            table.add_row(name, step, f"{old:.2f}", f"{new:.2f}", f"{new / old:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
