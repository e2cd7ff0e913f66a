"""Where a batch-1 request's time goes, run by hand: ``python -m benchmarks.serving.latency [--model DIR]``.

Times, for one short sentence at a time (p50 of many calls each): the tokenizer, the whole
in-process ``classify`` (tokenizer + onnxruntime), the JSON work of the classic route, and
the served request from a keep-alive client (``http.client``, the lightest there is) at
concurrency 1.  What the served p50 has beyond the in-process call is HTTP parsing, the event
loop, the batcher's thread hop and the client itself.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
from pathlib import Path

import orjson
from rich.table import Table

from benchmarks.serving.__main__ import REPO, console, machine, running
from benchmarks.serving.sentences import SENTENCES
from conveyor.containers import free_port
from conveyor.serving.model import TextClassifier
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import resolve_model


def p50_us(call, n: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "sentiment")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    texts = SENTENCES[:64]
    model = TextClassifier(resolve_model(args.model), RuntimeOptions(), max_run=64)
    for text in texts:
        model.classify([text])
    rows = {
        "tokenizer (1 text)": p50_us(lambda i: model.tokenize([texts[i % len(texts)]]), args.calls),
        "classify in-process (tokenizer + onnxruntime)": p50_us(
            lambda i: model.classify([texts[i % len(texts)]]), args.calls
        ),
        "JSON in and out (orjson)": p50_us(
            lambda i: orjson.dumps(orjson.loads(orjson.dumps([texts[i % len(texts)]])) and {"positive": True}),
            args.calls,
        ),
    }
    port = free_port()
    command = [
        sys.executable, "-m", "conveyor", "serve", str(args.model), "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with running(command, port):
        connection = http.client.HTTPConnection("127.0.0.1", port)
        bodies = [orjson.dumps([t]) for t in texts]

        def request(i: int) -> None:
            connection.request("POST", "/predict", bodies[i % len(texts)], {"Content-Type": "application/json"})
            connection.getresponse().read()

        for i in range(200):
            request(i)
        rows["served, keep-alive client, c=1"] = p50_us(request, args.calls)
        connection.close()
    served = rows["served, keep-alive client, c=1"]
    table = Table(title=f"batch-1 latency, p50 of {args.calls} calls each")
    for column in ("part", "p50 µs", "share of served"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, value in rows.items():
        table.add_row(name, f"{value:.0f}", f"{value / served:.0%}")
    in_process = rows["classify in-process (tokenizer + onnxruntime)"]
    table.add_row(
        "rest: HTTP, event loop, batcher hop, client", f"{served - in_process:.0f}", f"{1 - in_process / served:.0%}"
    )
    console.print(table)
    console.print(f"served / in-process: {served / in_process:.2f}; machine: {machine()}")


if __name__ == "__main__":
    main()
