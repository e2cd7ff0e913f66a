"""Where a batch-1 request's time goes, run by hand: ``python -m benchmarks.serving.latency [--model DIR]``.

Times, for one short sentence at a time (p50 of many calls each): the tokenizer, the whole
in-process ``classify`` (tokenizer + onnxruntime), the same call submitted through the server's
``Batcher`` from an event loop (the hop onto the inference thread and back), the JSON work of
the classic route, the served request from a keep-alive client (``http.client``, the lightest
there is) at concurrency 1, and the same route's round trip without the model (``[]``, answered
422 after the body is read and parsed: HTTP, the event loop, the route and the client).  Pairs
that are compared are measured call by call in alternation, so this VM's drift hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
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
from conveyor.serving.batching import Batcher
from conveyor.serving.model import TextClassifier
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import resolve_model


def timed(call, i: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call(i)
    return time.perf_counter() - started


def p50_us(call, n: int) -> float:  # type: ignore[no-untyped-def]
    return statistics.median([timed(call, i) for i in range(n)]) * 1e6


def alternating(model: TextClassifier, texts: list[str], calls: int) -> tuple[float, float]:
    """p50 µs of ``classify`` called directly and through a ``Batcher``, call by call in turn."""

    async def measure() -> tuple[float, float]:
        batcher: Batcher[str, object] = Batcher(model.classify)
        batcher.start()
        direct: list[float] = []
        hopped: list[float] = []
        for i in range(calls):
            one = [texts[i % len(texts)]]
            direct.append(timed(lambda j: model.classify([texts[j % len(texts)]]), i))
            started = time.perf_counter()
            await batcher.submit(one)
            hopped.append(time.perf_counter() - started)
        await batcher.close()
        return statistics.median(direct) * 1e6, statistics.median(hopped) * 1e6

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "sentiment")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    texts = SENTENCES[:64]
    model = TextClassifier(resolve_model(args.model), RuntimeOptions(), max_run=64)
    for text in texts:
        model.classify([text])
    direct, hopped = alternating(model, texts, args.calls)
    rows = {
        "tokenizer (1 text)": p50_us(lambda i: model.tokenize([texts[i % len(texts)]]), args.calls),
        "classify in-process (tokenizer + onnxruntime)": direct,
        "the same through the batcher (event loop -> inference thread -> back)": hopped,
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

        def round_trip(i: int) -> None:
            connection.request("POST", "/predict", b"[]", {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 422, answer.status

        for i in range(200):
            request(i)
            round_trip(i)
        served_samples: list[float] = []
        trip_samples: list[float] = []
        for i in range(args.calls):
            served_samples.append(timed(request, i))
            trip_samples.append(timed(round_trip, i))
        rows["served, keep-alive client, c=1"] = statistics.median(served_samples) * 1e6
        rows["round trip without the model (POST [] -> 422)"] = statistics.median(trip_samples) * 1e6
        connection.close()
    served = rows["served, keep-alive client, c=1"]
    table = Table(title=f"batch-1 latency, p50 of {args.calls} calls each")
    for column in ("part", "p50 µs", "share of served"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, value in rows.items():
        table.add_row(name, f"{value:.0f}", f"{value / served:.0%}")
    in_process = rows["classify in-process (tokenizer + onnxruntime)"]
    rest = served - in_process
    hop = hopped - in_process
    trip = rows["round trip without the model (POST [] -> 422)"]
    table.add_row("rest: served minus in-process", f"{rest:.0f}", f"{rest / served:.0%}")
    table.add_row("  the batcher's hop (through the batcher minus in-process)", f"{hop:.0f}", f"{hop / served:.0%}")
    table.add_row("  HTTP round trip (without the model)", f"{trip:.0f}", f"{trip / served:.0%}")
    left = rest - hop - trip
    table.add_row("  unaccounted (drift between the two measurements)", f"{left:.0f}", f"{left / served:.0%}")
    console.print(table)
    console.print(f"served / in-process: {served / in_process:.2f}; machine: {machine()}")


if __name__ == "__main__":
    main()
