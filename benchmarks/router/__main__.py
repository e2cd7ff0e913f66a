"""Router overhead: the same closed-loop load against a backend directly, through conveyor router, through nginx.

python -m benchmarks.router [--duration 10]   (make bench-router; needs wrk, the reference model, and nginx for
the reference row: apt-get install nginx-light)

One reference-model server (conveyor serve models/sentiment). The router and nginx both split traffic 90/10
between two upstream entries that point at that same server, so the weighted path is what is measured,
not a second model competing for the 2 cores. Reported: rps, p50, p99 per concurrency, and for each proxy
the added p50/p99 and the throughput loss against the direct run measured in the same invocation.
Targets (issue 7): added p50 under 1 ms, throughput loss under 15% at concurrency 32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.serving.__main__ import (
    load_levels,
    machine,
    preflight,
    run_wrk,
    start,
    stop,
    wait_ready,
    write_bodies,
)
from conveyor.verify.targets import free_port

REPO = Path(__file__).resolve().parents[2]
console = Console(width=150)

NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    upstream model {{
        server 127.0.0.1:{backend} weight=90;
        server localhost:{backend} weight=10;
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


def measure(name: str, url: str, duration: float, bodies: Path) -> list[dict]:
    run_wrk(url, 8, 2, bodies)  # warm up
    return [
        {
            "path": r.server,
            "concurrency": r.concurrency,
            "rps": r.requests_per_s,
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
            "errors": r.errors,
        }
        for r in load_levels(name, url, duration, bodies)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per load level")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    model = preflight()
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bodies = write_bodies(tmp)
        backend_port, router_port, nginx_port = free_port(), free_port(), free_port()
        backend_url = f"http://127.0.0.1:{backend_port}"
        conveyor = [sys.executable, "-m", "conveyor"]
        backend = start([*conveyor, "serve", str(model), "--port", str(backend_port), "--log-level", "warning"])
        processes = [backend]
        try:
            wait_ready(backend_url, backend)
            results += measure("direct", backend_url, args.duration, bodies)

            router = start(
                [*conveyor, "router", "--service", "bench", "--port", str(router_port), "--log-level", "warning"],
                env={"CONVEYOR_HOME": str(tmp / "home")},
            )
            processes.append(router)
            router_url = f"http://127.0.0.1:{router_port}"
            for _ in range(100):
                try:
                    httpx.get(router_url + "/_conveyor/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            table = {
                "backends": [
                    {"name": "stable", "url": backend_url, "version": "1", "weight": 90},
                    {"name": "canary", "url": f"http://localhost:{backend_port}", "version": "2", "weight": 10},
                ]
            }
            token = (tmp / "home" / "rollouts" / "bench" / "router.token").read_text()  # stored for local tools
            admin = {"Authorization": f"Bearer {token}"}
            httpx.put(router_url + "/_conveyor/routes", json=table, headers=admin, timeout=5).raise_for_status()
            wait_ready(router_url, router)
            results += measure("conveyor router (90/10)", router_url, args.duration, bodies)
            stop(router)

            nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
            if nginx:
                conf = tmp / "nginx.conf"
                conf.write_text(NGINX_CONF.format(tmp=tmp, backend=backend_port, port=nginx_port))
                proxy = start([nginx, "-c", str(conf), "-g", "daemon off;"])
                processes.append(proxy)
                wait_ready(f"http://127.0.0.1:{nginx_port}", proxy)
                results += measure("nginx (90/10)", f"http://127.0.0.1:{nginx_port}", args.duration, bodies)
                stop(proxy)
            else:
                console.print("[yellow]nginx not found: its reference row is left out (apt-get install nginx-light)")
        finally:
            for process in processes:
                if process.poll() is None:
                    stop(process)
    direct = {r["concurrency"]: r for r in results if r["path"] == "direct"}
    table = Table(title="reference model, wrk -t1 on the same 2 cores: direct vs through a proxy")
    for column in ("path", "conc.", "rps", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "throughput loss"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for row in results:
        base = direct[row["concurrency"]]
        row["added_p50_ms"] = row["p50_ms"] - base["p50_ms"]
        row["added_p99_ms"] = row["p99_ms"] - base["p99_ms"]
        row["throughput_loss"] = 1 - row["rps"] / base["rps"]
        same = row["path"] == "direct"
        table.add_row(
            row["path"],
            str(row["concurrency"]),
            f"{row['rps']:.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            "" if same else f"{row['added_p50_ms']:+.2f}",
            "" if same else f"{row['added_p99_ms']:+.2f}",
            "" if same else f"{row['throughput_loss']:.1%}",
        )
    console.print(table)
    router_c32 = next(r for r in results if r["path"].startswith("conveyor") and r["concurrency"] == 32)
    router_c1 = next(r for r in results if r["path"].startswith("conveyor") and r["concurrency"] == 1)
    console.print(
        f"targets: added p50 at c1 {router_c1['added_p50_ms']:+.2f} ms (< 1 ms), at c32 "
        f"{router_c32['added_p50_ms']:+.2f} ms; throughput loss at c32 {router_c32['throughput_loss']:.1%} (< 15%)"
    )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
