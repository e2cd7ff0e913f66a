"""Router overhead: the same closed-loop load against a backend directly, through conveyor router (each data
plane) and through nginx, interleaved in rounds, with the goals of issue 46 judged PASS or MISS.

python -m benchmarks.router [--duration 6 --rounds 3]   (make bench-router; needs wrk, nginx and the reference
model: apt-get install wrk nginx-light; make model)

One reference-model server (conveyor serve models/sentiment). Every proxy splits traffic 90/10 between two
upstream entries that point at that same server, so the weighted path is what is measured, not a second
model competing for the 2 cores. All proxies run side by side for the whole run; each round measures every
path at every concurrency, in an order that rotates per round, so a drifting machine biases none of them.
Reported: the median over rounds with its range, the load average around each run, and each proxy's own
CPU time per request (psutil: the proxy's processes only, its nginx workers included), which a loaded
machine does not distort as it does wall-clock numbers.

Goals (issue 46): added p50 at concurrency 1 at most 0.3 ms over direct; throughput loss at concurrency 8
within 5 points of nginx's, both measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.serving.__main__ import machine, preflight, run_wrk, settle, start, stop, wait_ready, write_bodies
from conveyor.containers import free_port

console = Console(width=160)
CONCURRENCY = (1, 8, 32)
ADDED_P50_GOAL_MS = 0.3
LOSS_POINTS_GOAL = 5.0
PATHS = ("direct", "router, embedded", "router, nginx data plane", "nginx")

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    upstream model {{
        server 127.0.0.1:{backend} weight=90;
        server 127.0.0.1:{backend} weight=10;
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass
class Cell:
    """One path at one concurrency: a measurement per round."""

    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # the proxy's CPU per request (none for direct)
    load: list[float] = field(default_factory=list)  # 1-minute load average at the run's start
    errors: int = 0


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for one in [process, *process.children(recursive=True)]:
                times = one.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _router(tmp: Path, name: str, backend_url: str, data_plane: str) -> tuple[str, object]:
    port = free_port()
    home = tmp / name
    command = [sys.executable, "-m", "conveyor", "router", "--service", "bench", "--port", str(port)]
    command += ["--log-level", "warning", "--data-plane", data_plane]
    process = start(command, env={"CONVEYOR_HOME": str(home)})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/_conveyor/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    table = {
        "backends": [
            {"name": "stable", "url": backend_url, "version": "1", "weight": 90},
            {"name": "canary", "url": backend_url, "version": "2", "weight": 10},
        ]
    }
    token = (home / "rollouts" / "bench" / "router.token").read_text()  # stored for the local tools
    admin = {"Authorization": f"Bearer {token}"}
    httpx.put(url + "/_conveyor/routes", json=table, headers=admin, timeout=30).raise_for_status()
    wait_ready(url, process)
    return url, process


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _span(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}" if values else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=6, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    model = preflight()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        sys.exit("nginx is needed (the reference row and the router's nginx data plane): apt-get install nginx-light")
    cells: dict[tuple[str, int], Cell] = {(p, c): Cell() for p in PATHS for c in CONCURRENCY}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bodies = write_bodies(tmp)
        backend_port, nginx_port = free_port(), free_port()
        backend_url = f"http://127.0.0.1:{backend_port}"
        conveyor = [sys.executable, "-m", "conveyor"]
        backend = start([*conveyor, "serve", str(model), "--port", str(backend_port), "--log-level", "warning"])
        processes = [backend]
        try:
            wait_ready(backend_url, backend)
            embedded_url, embedded = _router(tmp, "embedded", backend_url, "embedded")
            processes.append(embedded)  # type: ignore[arg-type]
            plane_url, plane = _router(tmp, "nginx-plane", backend_url, "nginx")
            processes.append(plane)  # type: ignore[arg-type]
            conf = tmp / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=tmp, backend=backend_port, port=nginx_port))
            reference = start([nginx, "-c", str(conf)])
            processes.append(reference)
            nginx_url = f"http://127.0.0.1:{nginx_port}"
            wait_ready(nginx_url, reference)
            targets = {
                "direct": (backend_url, []),
                "router, embedded": (embedded_url, [embedded.pid]),  # type: ignore[attr-defined]
                "router, nginx data plane": (plane_url, [plane.pid]),  # type: ignore[attr-defined]
                "nginx": (nginx_url, [reference.pid]),
            }
            for url, _ in targets.values():
                run_wrk(url, 8, 2, bodies)  # warm every path up once
            for number in range(args.rounds):
                order = PATHS[number % len(PATHS) :] + PATHS[: number % len(PATHS)]
                for concurrency in CONCURRENCY:
                    for path in order:
                        url, pids = targets[path]
                        settle(url)
                        cell = cells[(path, concurrency)]
                        cell.load.append(os.getloadavg()[0])
                        before = _cpu_seconds(pids)
                        raw = run_wrk(url, concurrency, args.duration, bodies)
                        used = _cpu_seconds(pids) - before
                        requests = max(1, raw["requests"])
                        cell.rps.append(requests / (raw["duration_us"] / 1e6))
                        cell.p50.append(raw["p50_us"] / 1000)
                        cell.p99.append(raw["p99_us"] / 1000)
                        if pids:
                            cell.cpu_us.append(used / requests * 1e6)
                        cell.errors += raw["errors"]
                console.print(f"round {number + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}")
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    stop(process)
    report(cells, args.rounds)
    if args.json:
        document = {f"{p} c={c}": vars(cell) for (p, c), cell in cells.items()}
        args.json.write_text(json.dumps({"machine": machine(), "cells": document}, indent=2))


def report(cells: dict[tuple[str, int], Cell], rounds: int) -> None:
    table = Table(title=f"reference model, wrk -t1, same 2 cores: median of {rounds} interleaved rounds (range)")
    columns = (
        "path",
        "conc.",
        "rps",
        "p50 ms",
        "p99 ms",
        "added p50 ms",
        "throughput loss",
        "proxy CPU us/req",
        "load",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "path" else "right")
    added: dict[tuple[str, int], list[float]] = {}
    loss: dict[tuple[str, int], list[float]] = {}
    for concurrency in CONCURRENCY:
        base = cells[("direct", concurrency)]
        for path in PATHS:
            cell = cells[(path, concurrency)]
            # per round against the direct run of the same round: the machine drifts between rounds
            added[(path, concurrency)] = [p - b for p, b in zip(cell.p50, base.p50, strict=True)]
            loss[(path, concurrency)] = [100 * (1 - r / b) for r, b in zip(cell.rps, base.rps, strict=True)]
            same = path == "direct"
            table.add_row(
                path,
                str(concurrency),
                f"{_median(cell.rps):.0f} ({_span(cell.rps, 0)})",
                f"{_median(cell.p50):.2f} ({_span(cell.p50, 2)})",
                f"{_median(cell.p99):.2f}",
                "" if same else f"{_median(added[(path, concurrency)]):+.2f} ({_span(added[(path, concurrency)], 2)})",
                "" if same else f"{_median(loss[(path, concurrency)]):.1f}% ({_span(loss[(path, concurrency)], 1)})",
                f"{_median(cell.cpu_us):.0f}" if cell.cpu_us else "",
                _span(cell.load, 1),
            )
    console.print(table)
    nginx_loss = _median(loss[("nginx", 8)])
    for path in ("router, nginx data plane", "router, embedded"):
        p50 = _median(added[(path, 1)])
        points = _median(loss[(path, 8)]) - nginx_loss
        console.print(
            f"{path}: added p50 at c=1 {p50:+.2f} ms (goal <= {ADDED_P50_GOAL_MS} ms) "
            f"{'PASS' if p50 <= ADDED_P50_GOAL_MS else 'MISS'}; "
            f"throughput loss at c=8 {_median(loss[(path, 8)]):.1f}% against nginx's {nginx_loss:.1f}%: "
            f"{points:+.1f} points (goal <= {LOSS_POINTS_GOAL:g}) {'PASS' if points <= LOSS_POINTS_GOAL else 'MISS'}"
        )
    console.print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
