"""What the payload log costs a server, run by hand:

    .venv/bin/python -m benchmarks.serving.payload_log [--duration 5] [--rounds 4] [--sample 0.1]

The fastest model we have is the worst case for a per-request cost: the ``risk`` scikit-learn
Pipeline (tests/tabular_models.py) registered with ``conveyor models register``, answering one
row in about half a millisecond over HTTP.  Two ``conveyor serve`` processes of it run side by
side: one without a payload log, one with ``--log-payloads`` at ``--sample`` (and a third at
every request, for scale).  wrk (closed loop, one thread, the same 2 cores) drives ``/predict``
with one record per request at concurrency 1 and 32; rounds alternate the order and the ratios
are taken per round (median and range reported).  The version is registered with a reference, so
the logged servers also judge their traffic for drift on the log's thread (the gauges on
``/metrics``, ``--drift-window`` 500).  The targets (issue 30): at a 10% sample, under 5% of
throughput at c=32 and under 0.2 ms of p50 at c=1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.serving.__main__ import machine, run_wrk
from benchmarks.tabular.__main__ import levels, serving
from conveyor.verify.targets import free_port

CONCURRENCY = (1, 32)
console = Console(width=120)


def prepare(folder: Path, home: Path) -> Path:
    """Train and register risk:1; write wrk's bodies (one record per request)."""
    import pandas as pd
    from tests.tabular_models import risk_frame, train

    trained = train(folder / "trained")
    reference = folder / "reference.csv"
    risk_frame()[0].to_csv(reference, index=False)  # profiled: the logged servers judge drift as they go
    env = {**os.environ, "CONVEYOR_HOME": str(home), "CONVEYOR_REGISTRY": ""}
    register = [sys.executable, "-m", "conveyor.cli.main", "models", "register", str(trained.risk)]
    register += ["--name", "risk", "--sample", str(trained.risk_sample), "--positive-label", "high"]
    register += ["--reference", str(reference)]
    subprocess.run(register, check=True, env=env, capture_output=True)
    rows = json.loads(pd.read_csv(trained.risk_sample).to_json(orient="records"))
    bodies = folder / "records.txt"
    bodies.write_text("\n".join(json.dumps([row]) for row in rows) + "\n")
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per load level and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sample", type=float, default=0.1, help="the logged server's --log-sample")
    args = parser.parse_args()
    console.print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder, home = Path(tmp), Path(tmp) / "home"
        bodies = prepare(folder, home)
        env = {"CONVEYOR_HOME": str(home), "CONVEYOR_REGISTRY": ""}
        serve = [sys.executable, "-m", "conveyor.cli.main", "serve", "risk:1", "--log-level", "warning"]
        logs = ["--log-payloads", str(folder / "logs")]
        variants = {
            "no payload log": [],
            f"payload log, sample {args.sample:g}": [*logs, "--log-sample", str(args.sample)],
            f"... no live drift, sample {args.sample:g}": [
                *logs,
                "--log-sample",
                str(args.sample),
                "--drift-window",
                "0",
            ],
            "payload log, every request": [*logs, "--log-sample", "1"],
        }
        ports = {name: free_port() for name in variants}
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(
                    serving([*serve, "--port", str(ports[name]), *extra], ports[name], "/v2/health/ready", env)
                )
                for name, extra in variants.items()
            }
            runs = alternating_rounds(urls, bodies, args.rounds, args.duration)
        logged = sum(len(p.read_text().splitlines()) for p in (folder / "logs").rglob("*.jsonl"))
    report(runs, args.sample, logged)


def alternating_rounds(urls: dict[str, str], bodies: Path, rounds: int, duration: float) -> dict[str, list[Any]]:
    """Each server's load levels per round, warmed first; rounds alternate the order (the VM drifts)."""
    for url in urls.values():
        run_wrk(url, 8, 2, bodies)  # warm
    runs: dict[str, list[Any]] = {name: [] for name in urls}
    for number in range(rounds):
        order = list(urls) if number % 2 == 0 else list(reversed(urls))
        for name in order:
            runs[name].append(levels(urls[name], "/predict", bodies, duration, CONCURRENCY))
    return runs


def runs_table(runs: dict[str, list[Any]]) -> Table:
    """Each server's median req/s and latencies at each concurrency."""
    rounds = len(next(iter(runs.values())))
    table = Table(title=f"risk (scikit-learn Pipeline) /predict, one row per request, median of {rounds} rounds")
    for column in ("server", "c", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, per_round in runs.items():
        for c in CONCURRENCY:
            med = {k: float(np.median([r[c][k] for r in per_round])) for k in ("rps", "p50_ms", "p99_ms")}
            errors = sum(r[c]["errors"] for r in per_round)
            table.add_row(
                name, str(c), f"{med['rps']:.0f}", f"{med['p50_ms']:.3f}", f"{med['p99_ms']:.3f}", str(errors)
            )
    return table


def against(per_round: list[Any], base: list[Any]) -> tuple[str, str]:
    """c=32 throughput ratio and c=1 p50 added against BASE, per round: median (range)."""
    throughput = [r[32]["rps"] / b[32]["rps"] for r, b in zip(per_round, base, strict=True)]
    added = [r[1]["p50_ms"] - b[1]["p50_ms"] for r, b in zip(per_round, base, strict=True)]
    return (
        f"{np.median(throughput):.3f} ({min(throughput):.3f}-{max(throughput):.3f})",
        f"{np.median(added):+.3f} ({min(added):+.3f} to {max(added):+.3f})",
    )


def report(runs: dict[str, list[Any]], sample: float, logged: int) -> None:
    console.print(runs_table(runs))
    base, *others = list(runs)
    ratios = Table(title="against no payload log, per round: median (range)")
    for column in ("server", "c=32 req/s ratio", "c=1 p50 added ms", "targets (sample 0.1)"):
        ratios.add_column(column)
    for name in others:
        target = ">= 0.95, < 0.2 ms" if f"{sample:g}" in name and "every" not in name else "report"
        ratios.add_row(name, *against(runs[name], runs[base]), target)
    console.print(ratios)
    console.print(f"records logged in all: {logged}")


if __name__ == "__main__":
    main()
