"""Serving benchmark, run by hand:

    .venv/bin/python -m benchmarks.serving [--duration 6] [--rounds 3] [--models minilm,roberta]
        [--peers mlserver,bentoml,reference]

For each model, in each of ``--rounds`` rounds, back to back:
  (a) the limit: in-process onnxruntime throughput at the best batch size, tokenization included;
  (b) the classic Flask app (slow tokenizer, dev server), the baseline;
  (c) ``conveyor serve`` under closed-loop load from wrk (a separate process) at concurrency 1, 8, 32;
  (d) on the MiniLM model, the peers (``peers.py``: MLServer, BentoML, a raw-ASGI micro-batcher), each
      in its own virtual environment, at the same levels; every server must first agree with raw
      onnxruntime on each sentence.
Prints the medians over rounds and the ratios (taken per round, then the median, with their
range) against the targets.  The load generator shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from rich.console import Console
from rich.table import Table

from benchmarks.serving import peers
from benchmarks.serving.sentences import SENTENCES
from conveyor import minilm as encoder
from conveyor.serving.model import TextClassifier
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import resolve_model
from conveyor.transformer_onnx import ROBERTA_BASE, random_cls_classifier
from conveyor.verify.targets import free_port

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "models" / "bench"
CONCURRENCY = (1, 8, 32)
BATCH_SIZES = (1, 8, 16, 32, 64)
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


def in_process(classifier: TextClassifier, seconds: float) -> tuple[dict[int, float], float]:
    """Sentences/s per batch size, and the p50 latency in ms of every batch-1 call timed."""
    throughput: dict[int, float] = {}
    batch1: list[float] = []
    for batch in BATCH_SIZES:
        warm_until = time.perf_counter() + 0.5  # onnxruntime settles its buffers per shape
        i = 0
        while time.perf_counter() < warm_until:
            classifier.classify([SENTENCES[(i + k) % len(SENTENCES)] for k in range(batch)])
            i += batch
        done = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            texts = [SENTENCES[(i + k) % len(SENTENCES)] for k in range(batch)]
            call = time.perf_counter()
            classifier.classify(texts)
            if batch == 1:
                batch1.append(time.perf_counter() - call)
            done += batch
            i += batch
        throughput[batch] = done / (time.perf_counter() - started)
    return throughput, float(np.percentile(batch1, 50) * 1000)


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


def settle(url: str, path: str = "/predict", body: object = None) -> None:
    """Wait until the server has drained the requests the last wrk run abandoned.

    wrk stops by closing its connections; the requests they had in flight are
    still computed.  One request sent now is answered after that backlog, so
    the next level does not start behind it (on the RoBERTa shape a batch of
    16 abandoned requests takes half a second).
    """
    import httpx

    httpx.post(f"{url}{path}", json=[SENTENCES[0]] if body is None else body, timeout=60)


def run_wrk(url: str, concurrency: int, duration: float, bodies: Path, path: str = "/predict") -> dict:
    """One closed-loop wrk run POSTing ``bodies`` (one per line) to ``url + path``: its JSON report."""
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
            f"{url}{path}",
            "--",
            str(bodies),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    return json.loads(line.removeprefix("WRK_JSON "))


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A server process in the repository, its output discarded."""
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env={**os.environ, **(env or {})}
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def running(command: list[str], port: int) -> Iterator[str]:
    """A server process, ready and warmed, stopped with SIGTERM afterwards; yields its URL."""
    url = f"http://127.0.0.1:{port}"
    process = start(command)
    try:
        wait_ready(url, process)
        yield url
    finally:
        stop(process)


def load_levels(
    name: str, url: str, duration: float, bodies: Path, path: str = "/predict", settle_body: object = None
) -> list[LoadResult]:
    """One closed-loop wrk run per concurrency level."""
    results = []
    for concurrency in CONCURRENCY:
        settle(url, path, settle_body)
        raw = run_wrk(url, concurrency, duration, bodies, path)
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
    return results


def load() -> str:
    """The machine's load average, printed beside every number: the cores are shared."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def agreement(model_dir: Path, conveyor_url: str, peer_urls: dict[str, str]) -> None:
    """Every server's label for each sentence alone, against raw onnxruntime's; exits on one disagreement."""
    expected = peers.onnxruntime_labels(model_dir, SENTENCES)
    labels = resolve_model(model_dir).spec.labels
    servers = {"conveyor serve": (conveyor_url, "/predict", lambda text: [text], peers.classic_label)}
    for name, url in peer_urls.items():
        peer = peers.PEERS[name]
        servers[peer.name] = (url, peer.path, peer.body, peer.label)
    agreed = peers.check_agreement(servers, expected, SENTENCES, labels)
    console.print(
        "agreement with raw onnxruntime, sentence by sentence: "
        + ", ".join(f"{name} {n}/{len(SENTENCES)}" for name, n in agreed.items())
    )


def peer_report(label: str, done: list[Round], peer_names: Sequence[str]) -> None:
    """Conveyor over each peer per concurrency (requests/s, and p99 at c=32), taken within each round."""
    table = Table(title=f"{label}: conveyor serve / each peer, per round: median (range)")
    table.add_column("peer")
    for c in CONCURRENCY:
        table.add_column(f"c={c} req/s ratio", justify="right")
    table.add_column("c=32 p99 peer/conveyor", justify="right")
    table.add_column("target (c=8, c=32)", justify="right")
    for name in peer_names:
        ours = [{r.concurrency: r.requests_per_s for r in x.conveyor} for x in done]
        theirs = [{r.concurrency: r.requests_per_s for r in x.peers[name]} for x in done]
        rows = peers.ratio_rows(ours, theirs, CONCURRENCY)
        tails = peers.ratio_rows(
            [{32: x.at(x.peers[name], 32).p99_ms} for x in done],
            [{32: x.at(x.conveyor, 32).p99_ms} for x in done],
            (32,),
        )
        verdict = ""
        if name == "reference":  # issue 46: at least the hand-written batcher's throughput at c=8 and c=32
            met = rows[8][0] >= 1 and rows[32][0] >= 1
            verdict = f">= 1.00: {'PASS' if met else 'MISS'}"
        cells = [f"{m:.2f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in (rows[c] for c in CONCURRENCY)]
        table.add_row(peers.PEERS[name].name, *cells, "{:.2f} ({:.2f}-{:.2f})".format(*tails[32]), verdict)
    console.print(table)


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


@dataclass
class Round:
    """One round: the in-process limit, then both servers under load, back to back."""

    throughput: dict[int, float]
    batch1_ms: float
    flask: list[LoadResult]
    conveyor: list[LoadResult]
    peers: dict[str, list[LoadResult]] = field(default_factory=dict)  # by peer name (benchmarks/serving/peers.py)

    def at(self, results: list[LoadResult], concurrency: int) -> LoadResult:
        return next(r for r in results if r.concurrency == concurrency)

    def ratios(self) -> dict[str, tuple[float, str]]:
        c1, c32 = self.at(self.conveyor, 1), self.at(self.conveyor, 32)
        ratios = {  # issue 46 item 1's goals (the reference batcher's are in the peer table)
            "conveyor c32 / in-process batch-32": (c32.requests_per_s / self.throughput[32], ">= 0.90"),
            "conveyor c1 p50 / in-process batch-1 p50": (c1.p50_ms / self.batch1_ms, "<= 1.15"),
            "conveyor c32 / flask c32": (c32.requests_per_s / self.at(self.flask, 32).requests_per_s, ">= 2.50"),
        }
        for r in self.conveyor:
            ratios[f"conveyor c{r.concurrency} p99 / p50"] = (r.p99_ms / r.p50_ms, "<= 3.00")
        return ratios


def median_load(rounds: list[Round], server: str, concurrency: int, peer: str | None = None) -> LoadResult:
    if peer is not None:
        runs = [r.at(r.peers[peer], concurrency) for r in rounds]
    else:
        runs = [r.at(r.flask if server.startswith("flask") else r.conveyor, concurrency) for r in rounds]
    return LoadResult(
        server,
        concurrency,
        float(np.median([x.requests_per_s for x in runs])),
        float(np.median([x.p50_ms for x in runs])),
        float(np.median([x.p99_ms for x in runs])),
        sum(x.errors for x in runs),
    )


def bench_model(
    label: str, model_dir: Path, duration: float, rounds: int, bodies: Path, peer_names: Sequence[str] = ()
) -> dict:
    """``rounds`` rounds of (in-process, Flask, conveyor, the peers); medians and per-round ratios.

    The machine is shared and drifts by 10-30% within minutes, so each round
    measures the baselines and conveyor back to back (in alternating order),
    and the ratios are taken per round before the median.
    """
    console.rule(f"[bold]{label}[/bold]")
    classifier = TextClassifier(resolve_model(model_dir), RuntimeOptions(), max_run=64)
    classifier.classify(SENTENCES[:8])
    flask_port, conveyor_port = free_port(), free_port()
    flask_command = [
        sys.executable,
        "-m",
        "benchmarks.serving.flask_baseline",
        "--model",
        str(model_dir / "model.onnx"),
        "--vocab",
        str(encoder.model_dir() / "vocab.txt"),
        "--port",
        str(flask_port),
    ]
    conveyor_command = [
        sys.executable,
        "-m",
        "conveyor.cli.main",
        "serve",
        str(model_dir),
        "--port",
        str(conveyor_port),
        "--log-level",
        "warning",
    ]
    done: list[Round] = []
    with (
        running(flask_command, flask_port) as flask_url,
        running(conveyor_command, conveyor_port) as conveyor_url,
        peers.running_peers(peer_names, model_dir, start, stop) as peer_urls,
    ):
        if peer_names:
            agreement(model_dir, conveyor_url, peer_urls)
        peer_bodies = {name: peers.write_bodies(peers.PEERS[name], SENTENCES, bodies.parent) for name in peer_urls}
        run_wrk(flask_url, 8, 2, bodies)  # warm every side
        run_wrk(conveyor_url, 8, 2, bodies)
        for name, url in peer_urls.items():
            run_wrk(url, 8, 2, peer_bodies[name], peers.PEERS[name].path)

        def peer_levels(name: str) -> list[LoadResult]:
            peer = peers.PEERS[name]
            settle_body = peer.body(SENTENCES[0])
            return load_levels(peer.name, peer_urls[name], duration, peer_bodies[name], peer.path, settle_body)

        for number in range(1, rounds + 1):
            # Odd rounds run in-process, Flask, conveyor, the peers; even rounds the reverse, so a
            # drift of the machine within a round does not favour one side.
            steps: list[tuple[str, Callable[[], object]]] = [
                ("in-process", lambda: in_process(classifier, duration / 2)),
                ("flask", lambda: load_levels("flask (classic)", flask_url, duration, bodies)),
                ("conveyor", lambda: load_levels("conveyor serve", conveyor_url, duration, bodies)),
                *((name, lambda name=name: peer_levels(name)) for name in peer_urls),
            ]
            measured = {name: step() for name, step in (steps if number % 2 else reversed(steps))}
            throughput, batch1_ms = measured.pop("in-process")
            flask, conveyor = measured.pop("flask"), measured.pop("conveyor")
            done.append(Round(throughput, batch1_ms, flask, conveyor, measured))
            summary = "; ".join(f"{name} {v:.2f}" for name, (v, _) in done[-1].ratios().items())
            console.print(f"round {number}/{rounds}: limit {max(throughput.values()):.0f}/s; {summary} ({load()})")

    throughput = {b: float(np.median([r.throughput[b] for r in done])) for b in BATCH_SIZES}
    batch1_ms = float(np.median([r.batch1_ms for r in done]))
    best_batch = max(throughput, key=throughput.__getitem__)
    console.print(
        "in-process sentences/s by batch size (median of rounds): "
        + ", ".join(f"{b}: {v:.0f}" for b, v in throughput.items())
        + f"; batch-1 p50 {batch1_ms:.2f} ms"
    )
    loads = [median_load(done, server, c) for server in ("flask (classic)", "conveyor serve") for c in CONCURRENCY]
    loads += [median_load(done, peers.PEERS[p].name, c, p) for p in peer_names for c in CONCURRENCY]
    table = Table(title=f"{label}: closed-loop load, wrk -t1 on the same 2 cores, median of {rounds} rounds")
    for column in ("server", "concurrency", "requests/s", "p50 ms", "p99 ms", "p99/p50", "errors"):
        table.add_column(column, justify="right" if column != "server" else "left")
    table.add_row("in-process limit", f"batch {best_batch}", f"{throughput[best_batch]:.0f}", "", "", "", "")
    table.add_row("in-process", "batch 1", f"{throughput[1]:.0f}", f"{batch1_ms:.2f}", "", "", "")
    for r in loads:
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
    per_round = [r.ratios() for r in done]
    ratio_table = Table(title=f"{label}: ratios (each round's baseline and conveyor measured back to back)")
    for column in ("ratio", "median", "range over rounds", "target", "met"):
        ratio_table.add_column(column, justify="left" if column == "ratio" else "right")
    ratios: dict[str, float] = {}
    for name, (_, target) in per_round[0].items():
        values = [r[name][0] for r in per_round]
        ratios[name] = float(np.median(values))
        bound = float(target.split()[1])
        met = ratios[name] >= bound if target.startswith(">=") else ratios[name] <= bound
        ratio_table.add_row(
            name, f"{ratios[name]:.2f}", f"{min(values):.2f}-{max(values):.2f}", target, "PASS" if met else "MISS"
        )
    console.print(ratio_table)
    if peer_names:
        peer_report(label, done, peer_names)
    return {
        "model": label,
        "rounds": [
            {
                "in_process": {str(k): v for k, v in r.throughput.items()},
                "batch1_p50_ms": r.batch1_ms,
                "load": [x.__dict__ for x in r.flask + r.conveyor + [y for p in r.peers.values() for y in p]],
            }
            for r in done
        ],
        "in_process": {str(k): v for k, v in throughput.items()},
        "batch1_p50_ms": batch1_ms,
        "load": [r.__dict__ for r in loads],
        "ratios": ratios,
    }


def preflight() -> Path:
    """Exit with the fix when wrk or the reference model is missing; print the machine; the model's path."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the load: apt-get install wrk")
    reference = REPO / "models" / "sentiment"
    if not (reference / "model.yaml").is_file():
        sys.exit("build the reference model first: make model")
    console.print(f"machine: {machine()}; {load()}")
    return reference


def write_bodies(folder: Path) -> Path:
    """wrk's request bodies: one ``["sentence"]`` per line."""
    bodies = folder / "bodies.txt"
    bodies.write_text("\n".join(json.dumps([s]) for s in SENTENCES) + "\n")
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=6, help="seconds per load level and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (in-process, Flask, conveyor)")
    parser.add_argument("--models", default="minilm,roberta", help="minilm, roberta or both")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--peers",
        default="mlserver,bentoml,reference",
        help="peer servers beside conveyor on the MiniLM model, each in its own venv (comma-separated; '' for none)",
    )
    args = parser.parse_args()
    peer_names = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peer_names) - set(peers.PEERS))
    if unknown:
        sys.exit(f"unknown peer(s) {unknown}: choose from {sorted(peers.PEERS)}")
    if "reference" in peer_names and not peers.REFERENCE_BATCHER.is_file():
        console.print(f"{peers.REFERENCE_BATCHER.relative_to(REPO)} is not in this checkout: no reference peer")
        peer_names.remove("reference")
    reference = preflight()
    with tempfile.TemporaryDirectory() as tmp:
        bodies = write_bodies(Path(tmp))
        results = []
        wanted = set(args.models.split(","))
        if "minilm" in wanted:
            results.append(
                bench_model("MiniLM reference model", reference, args.duration, args.rounds, bodies, peer_names)
            )
        if "roberta" in wanted:
            label = "RoBERTa-base shape (random weights)"
            results.append(bench_model(label, roberta_model_dir(), args.duration, args.rounds, bodies))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
