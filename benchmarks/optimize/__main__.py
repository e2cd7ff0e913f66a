"""Optimized variants benchmark, run by hand (``make bench-optimize``):

    .venv/bin/python -m benchmarks.optimize [--duration 6] [--rounds 3] [--methods fused-int8-smooth,int8-smooth,int8]
        [--model sentiment|roberta] [--eval-limit N]

For the reference model (``make model``; or with ``--model roberta`` the RoBERTa-base-shaped
model of ``benchmarks.serving``, random weights, compute-bound) and each variant
``conveyor.optimize`` makes:
  * agreement with fp32 on the training pipeline's held-out split (the gate's numbers);
  * the in-process limit (onnxruntime + tokenizer at the best batch size) and batch-1 p50;
  * ``conveyor serve`` under closed-loop wrk load at concurrency 1, 8 and 32.
Every round measures fp32 and the variants back to back, alternating the order; ratios are
taken per round, then the median and the range are printed against the target
(variant c32 / fp32 c32 >= 1.6).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.table import Table

from benchmarks.serving.__main__ import (
    CONCURRENCY,
    REPO,
    LoadResult,
    console,
    in_process,
    load_levels,
    machine,
    preflight,
    roberta_model_dir,
    run_wrk,
    running,
    write_bodies,
)
from conveyor.containers import free_port
from conveyor.optimize.agreement import compare
from conveyor.optimize.variants import Calibration, calibration_for, make_variant
from conveyor.serving.model import TextClassifier
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import resolve_model

TARGET = 1.6


def split_texts() -> tuple[list[str], list[str]]:
    """(training texts, held-out texts) of the training pipeline's split: calibrate on one, gate on the other."""
    from examples.sentiment.data import prepare

    data = prepare(REPO / "data")
    return data.train.texts, data.test.texts


def variant_folder(reference: Path, method: str, root: Path, calibration: Calibration) -> Path:
    folder = root / method
    shutil.copytree(reference, folder)
    params = make_variant(method, reference / "model.onnx", folder / "model.onnx", calibration)
    console.print(f"{method}: {params}")
    return folder


def serve_command(folder: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "conveyor", "serve", str(folder), "--port", str(port), "--log-level", "warning"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=6, help="seconds per load level and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default="fused-int8-smooth,int8-smooth,int8")
    parser.add_argument(
        "--model",
        choices=("sentiment", "roberta"),
        default="sentiment",
        help="the reference model or the RoBERTa shape",
    )
    parser.add_argument("--eval-limit", type=int, default=0, help="held-out texts for agreement (0: all)")
    args = parser.parse_args()
    reference = preflight()
    if args.model == "roberta":
        reference = roberta_model_dir()
    methods = [m for m in args.methods.split(",") if m]
    training, texts = split_texts()
    if args.eval_limit:
        texts = texts[: args.eval_limit]
    calibration = calibration_for(reference, training)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bodies = write_bodies(root)
        folders = {"fp32": reference, **{m: variant_folder(reference, m, root, calibration) for m in methods}}
        agreement = {m: compare(reference, folders[m], texts) for m in methods}
        for m, a in agreement.items():
            console.print(
                f"{m}: label agreement {a.rate:.2%} of {a.compared} held-out texts, "
                f"largest probability difference {a.max_probability_diff:.4f}"
            )
        classifiers = {
            name: TextClassifier(resolve_model(f), RuntimeOptions(), max_run=64) for name, f in folders.items()
        }
        ports = {name: free_port() for name in folders}
        rounds: list[dict[str, tuple[dict[int, float], float, list[LoadResult]]]] = []
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(running(serve_command(f, ports[name]), ports[name]))
                for name, f in folders.items()
            }
            for url in urls.values():
                run_wrk(url, 8, 2, bodies)
            for number in range(1, args.rounds + 1):
                order = list(folders) if number % 2 else list(reversed(folders))
                measured = {}
                for name in order:
                    throughput, batch1 = in_process(classifiers[name], args.duration / 2)
                    measured[name] = (throughput, batch1, load_levels(name, urls[name], args.duration, bodies))
                rounds.append(measured)
                c32 = {n: next(r for r in m[2] if r.concurrency == 32).requests_per_s for n, m in measured.items()}
                console.print(f"round {number}: " + ", ".join(f"{n} c32 {v:.0f}/s" for n, v in c32.items()))

    table = Table(
        title=f"{args.model}: fp32 and variants served by conveyor, wrk on the same cores, {args.rounds} rounds"
    )
    for column in (
        "model",
        "in-process limit",
        "batch-1 p50 ms",
        *[f"c{c} req/s" for c in CONCURRENCY],
        "c1 p50",
        "c32 p99",
    ):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name in folders:
        limit = float(np.median([max(r[name][0].values()) for r in rounds]))
        batch1 = float(np.median([r[name][1] for r in rounds]))
        by_c = {c: [next(x for x in r[name][2] if x.concurrency == c) for r in rounds] for c in CONCURRENCY}
        table.add_row(
            name,
            f"{limit:.0f}",
            f"{batch1:.2f}",
            *[f"{np.median([x.requests_per_s for x in by_c[c]]):.0f}" for c in CONCURRENCY],
            f"{np.median([x.p50_ms for x in by_c[1]]):.2f}",
            f"{np.median([x.p99_ms for x in by_c[32]]):.2f}",
        )
    console.print(table)
    ratios = Table(title="ratios (per round, then the median)")
    for column in ("ratio", "median", "range", "target", "met"):
        ratios.add_column(column, justify="left" if column == "ratio" else "right")
    for m in methods:
        for c in CONCURRENCY:
            values = [
                next(x for x in r[m][2] if x.concurrency == c).requests_per_s
                / next(x for x in r["fp32"][2] if x.concurrency == c).requests_per_s
                for r in rounds
            ]
            target = f">= {TARGET}" if c == 32 else ""
            met = "" if c != 32 else ("yes" if np.median(values) >= TARGET else "NO")
            ratios.add_row(
                f"{m} c{c} / fp32 c{c}", f"{np.median(values):.2f}", f"{min(values):.2f}-{max(values):.2f}", target, met
            )
    console.print(ratios)
    console.print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
