"""Serving benchmark, run by hand:

    .venv/bin/python -m benchmarks.serving [--duration 10] [--models minilm,roberta]

For each model, in one run:
  (a) the limit: in-process onnxruntime throughput at the best batch size, tokenization included;
  (b) the classic Flask app (slow tokenizer, dev server), the baseline;
  (c) ``conveyor serve`` under closed-loop load from wrk (a separate process) at concurrency 1, 8, 32.
Prints a table and the ratios against the targets.  The load generator shares the machine's
cores with the server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from examples.sentiment import encoder
from examples.sentiment.transformer_onnx import ROBERTA_BASE, random_cls_classifier
from rich.console import Console
from rich.table import Table

from benchmarks.serving.sentences import SENTENCES
from conveyor.serving.model import TextClassifier
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import resolve_model
from conveyor.verify.targets import free_port

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "models" / "bench"
CONCURRENCY = (1, 8, 32)
console = Console(width=120)


@dataclass
class LoadResult:
    server: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def roberta_model_dir() -> Path:
    """RoBERTa-base-shaped model, random weights, one `input`, no mask (built once, ~500 MB)."""
    out = CACHE / "roberta-base-random"
    if (out / "model.onnx").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    console.print("building the RoBERTa-base-shaped model (random weights) ...")
    onnx.save(random_cls_classifier(ROBERTA_BASE), out / "model.onnx")
    shutil.copy(REPO / "models" / "sentiment" / "tokenizer.json", out / "tokenizer.json")
    (out / "model.yaml").write_text(
        "name: roberta-random\nversion: '1'\nlabels: [negative, positive]\nmax_length: 128\n"
        "description: RoBERTa-base shape with random weights, for speed only\n"
    )
    return out


def in_process(model_dir: Path, duration: float) -> tuple[dict[int, float], float]:
    """Sentences/s per batch size, and batch-1 p50 latency in ms."""
    classifier = TextClassifier(resolve_model(model_dir), RuntimeOptions(), max_run=64)
    classifier.classify(SENTENCES[:8])
    throughput: dict[int, float] = {}
    for batch in (1, 8, 16, 32, 64):
        warm_until = time.perf_counter() + 1.0  # onnxruntime settles its buffers per shape
        i = 0
        while time.perf_counter() < warm_until:
            classifier.classify([SENTENCES[(i + k) % len(SENTENCES)] for k in range(batch)])
            i += batch
        done = 0
        started = time.perf_counter()
        i = 0
        while time.perf_counter() - started < duration / 2:
            texts = [SENTENCES[(i + k) % len(SENTENCES)] for k in range(batch)]
            classifier.classify(texts)
            done += batch
            i += batch
        throughput[batch] = done / (time.perf_counter() - started)
    latencies = []
    for k in range(max(64, len(SENTENCES) * 2)):
        started = time.perf_counter()
        classifier.classify([SENTENCES[k % len(SENTENCES)]])
        latencies.append(time.perf_counter() - started)
    return throughput, float(np.percentile(latencies, 50) * 1000)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.post(f"{url}/predict", json=["warm up"], timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready")


def run_wrk(url: str, concurrency: int, duration: float, bodies: Path) -> dict:
    script = Path(__file__).parent / "wrk_report.lua"
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{int(duration)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"{url}/predict",
            "--",
            str(bodies),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    return json.loads(line.removeprefix("WRK_JSON "))


def load_test(name: str, command: list[str], port: int, duration: float, bodies: Path) -> list[LoadResult]:
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    results = []
    try:
        wait_ready(url, process)
        run_wrk(url, 8, 2, bodies)  # warm both sides
        for concurrency in CONCURRENCY:
            raw = run_wrk(url, concurrency, duration, bodies)
            seconds = raw["duration_us"] / 1e6
            results.append(
                LoadResult(
                    name,
                    concurrency,
                    raw["requests"] / seconds,
                    raw["p50_us"] / 1000,
                    raw["p99_us"] / 1000,
                    raw["errors"],
                )
            )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return results


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.platform()}, Python {platform.python_version()}, "
        f"onnxruntime {onnxruntime.__version__}"
    )


def bench_model(label: str, model_dir: Path, duration: float, bodies: Path) -> dict:
    console.rule(f"[bold]{label}[/bold]")
    throughput, batch1_ms = in_process(model_dir, duration)
    best_batch = max(throughput, key=throughput.__getitem__)
    limit = throughput[best_batch]
    console.print(
        "in-process sentences/s by batch size: "
        + ", ".join(f"{b}: {v:.0f}" for b, v in throughput.items())
        + f"; batch-1 p50 {batch1_ms:.2f} ms"
    )
    flask_port = free_port()
    flask = load_test(
        "flask (classic)",
        [
            sys.executable,
            "-m",
            "benchmarks.serving.flask_baseline",
            "--model",
            str(model_dir / "model.onnx"),
            "--vocab",
            str(encoder.model_dir() / "vocab.txt"),
            "--port",
            str(flask_port),
        ],
        flask_port,
        duration,
        bodies,
    )
    conveyor_port = free_port()
    conveyor = load_test(
        "conveyor serve",
        [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "serve",
            str(model_dir),
            "--port",
            str(conveyor_port),
            "--log-level",
            "warning",
        ],
        conveyor_port,
        duration,
        bodies,
    )
    table = Table(title=f"{label}: closed-loop load, wrk -t1 on the same 2 cores")
    for column in ("server", "concurrency", "requests/s", "p50 ms", "p99 ms", "p99/p50", "errors"):
        table.add_column(column, justify="right" if column != "server" else "left")
    table.add_row("in-process limit", f"batch {best_batch}", f"{limit:.0f}", "", "", "", "")
    table.add_row("in-process", "batch 1", f"{throughput[1]:.0f}", f"{batch1_ms:.2f}", "", "", "")
    for r in flask + conveyor:
        table.add_row(
            r.server,
            str(r.concurrency),
            f"{r.requests_per_s:.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.p99_ms / r.p50_ms:.2f}",
            str(r.errors),
        )
    console.print(table)
    c32 = next(r for r in conveyor if r.concurrency == 32)
    f32 = next(r for r in flask if r.concurrency == 32)
    c1 = next(r for r in conveyor if r.concurrency == 1)
    ratios = {
        "conveyor c32 / in-process limit": (c32.requests_per_s / limit, ">= 0.80"),
        "conveyor c32 / flask c32": (c32.requests_per_s / f32.requests_per_s, ">= 2.50"),
        "conveyor c1 p50 / in-process batch-1 p50": (c1.p50_ms / batch1_ms, "<= 1.25"),
    }
    for r in conveyor:
        ratios[f"conveyor c{r.concurrency} p99 / p50"] = (r.p99_ms / r.p50_ms, "<= 3.00")
    ratio_table = Table(title=f"{label}: ratios")
    ratio_table.add_column("ratio")
    ratio_table.add_column("measured", justify="right")
    ratio_table.add_column("target", justify="right")
    for name, (value, target) in ratios.items():
        ratio_table.add_row(name, f"{value:.2f}", target)
    console.print(ratio_table)
    return {
        "model": label,
        "in_process": {str(k): v for k, v in throughput.items()},
        "batch1_p50_ms": batch1_ms,
        "load": [r.__dict__ for r in flask + conveyor],
        "ratios": {k: v[0] for k, v in ratios.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per load level")
    parser.add_argument("--models", default="minilm,roberta", help="minilm, roberta or both")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install wrk")
    reference = REPO / "models" / "sentiment"
    if not (reference / "model.yaml").is_file():
        sys.exit("build the reference model first: make model")
    console.print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.txt"
        bodies.write_text("\n".join(json.dumps([s]) for s in SENTENCES) + "\n")
        results = []
        wanted = set(args.models.split(","))
        if "minilm" in wanted:
            results.append(bench_model("MiniLM reference model", reference, args.duration, bodies))
        if "roberta" in wanted:
            results.append(
                bench_model("RoBERTa-base shape (random weights)", roberta_model_dir(), args.duration, bodies)
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
