"""What OpenTelemetry tracing costs a server, off and on, run by hand:

    .venv/bin/python -m benchmarks.serving.tracing [--duration 5] [--rounds 4] [--baseline-src PATH]

The worst case for a per-request cost is the fastest model: the ``risk`` scikit-learn Pipeline
(as in ``benchmarks.serving.payload_log``), one row per request.  ``conveyor serve`` processes of it
run side by side:

- ``before tracing``: the server from ``--baseline-src`` (a checkout's ``src`` from before the
  tracing change, e.g. a ``git worktree`` of that commit), without the tracing hooks at all;
- ``tracing off``: this checkout, no ``OTEL_EXPORTER_OTLP_ENDPOINT`` (what every user runs);
- ``tracing on``: this checkout, exporting every span over OTLP/HTTP to a receiver in this process
  that only counts what arrives (a collector elsewhere would not share the 2 cores);
- ``tracing on, 10% sampled``: the same with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` at 0.1.

wrk (closed loop, one thread, the same 2 cores) drives ``/predict`` at concurrency 1 and 32; rounds
alternate the order and ratios are per round against the first server (median and range).  The
targets (issue 31): tracing off within noise of the server before tracing at c=32; tracing on
reported at c=1 and c=32.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.serving.__main__ import machine
from benchmarks.serving.payload_log import against, alternating_rounds, prepare, runs_table
from benchmarks.tabular.__main__ import serving
from conveyor.verify.targets import free_port

console = Console(width=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per load level and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--baseline-src", type=Path, help="a checkout's src/ from before tracing (the baseline)")
    parser.add_argument("--off-only", action="store_true", help="only the baseline and tracing off (more rounds fit)")
    args = parser.parse_args()
    console.print(f"machine: {machine()}")
    from tests.otlp_receiver import OtlpReceiver

    receiver = OtlpReceiver(decode=False)  # counts what arrives: the server's cost, not a collector's
    with tempfile.TemporaryDirectory() as tmp:
        folder, home = Path(tmp), Path(tmp) / "home"
        bodies = prepare(folder, home)
        env = {"CONVEYOR_HOME": str(home), "CONVEYOR_REGISTRY": "", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
        serve = [sys.executable, "-m", "conveyor.cli.main", "serve", "risk:1", "--log-level", "warning"]
        variants: dict[str, dict[str, str]] = {}
        if args.baseline_src is not None:
            variants["before tracing"] = {**env, "PYTHONPATH": str(args.baseline_src.resolve())}
        variants["tracing off"] = env
        if not args.off_only:
            variants["tracing on"] = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
            variants["tracing on, 10% sampled"] = {
                **variants["tracing on"],
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            }
        ports = {name: free_port() for name in variants}
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(
                    serving([*serve, "--port", str(ports[name])], ports[name], "/v2/health/ready", variant_env)
                )
                for name, variant_env in variants.items()
            }
            runs = alternating_rounds(urls, bodies, args.rounds, args.duration)
    receiver.close()
    report(runs, receiver.requests, receiver.received_bytes)


def sdk_cost(requests: int = 5000) -> dict[bool, float]:
    """Microseconds per request for the OpenTelemetry SDK alone: a request's seven spans made, batched and
    (with True) OTLP-encoded on the export thread, with no server around them."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind, set_span_in_context

    class Discard(SpanExporter):
        def __init__(self, encode: bool) -> None:
            self.encode = encode

        def export(self, spans: Any) -> SpanExportResult:
            if self.encode:
                encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

    costs = {}
    for encode in (False, True):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Discard(encode), max_queue_size=10 * 7 * requests))
        tracer = provider.get_tracer("benchmark")
        started = time.perf_counter()
        for _ in range(requests):
            request = tracer.start_span("POST /predict", kind=SpanKind.SERVER, attributes={"conveyor.model": "risk"})
            now = time.time_ns()
            for name in ("read and parse", "batch wait", "serialise"):
                tracer.start_span(name, context=set_span_in_context(request), start_time=now).end(end_time=now)
            batch = tracer.start_span("batch", context=set_span_in_context(request), start_time=now)
            for name in ("prepare", "inference"):
                tracer.start_span(name, context=set_span_in_context(batch), start_time=now).end(end_time=now)
            batch.end(end_time=now)
            request.end()
        provider.force_flush()
        costs[encode] = (time.perf_counter() - started) / requests * 1e6
        provider.shutdown()
    return costs


def report(runs: dict[str, list[Any]], exports: int, received: int) -> None:
    console.print(runs_table(runs))
    base, *others = list(runs)
    ratios = Table(title=f"against {base}, per round: median (range)")
    for column in ("server", "c=32 req/s ratio", "c=1 p50 added ms"):
        ratios.add_column(column)
    for name in others:
        ratios.add_row(name, *against(runs[name], runs[base]))
    console.print(ratios)
    console.print(f"OTLP exports received from the traced servers: {exports} ({received / 1e6:.1f} MB)")
    costs = sdk_cost()
    console.print(
        f"the OpenTelemetry SDK alone, one request's 7 spans: {costs[False]:.0f} us made and batched, "
        f"{costs[True]:.0f} us with OTLP encoding"
    )


if __name__ == "__main__":
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    main()
