"""Registry benchmark, run by hand:

    .venv/bin/python -m benchmarks.registry [--size-mib 1024]

Registers and downloads one file of random bytes through (a) the embedded
registry (SQLite + local blob store) and (b) the registry server over HTTP on
127.0.0.1, each in its own process so peak memory (max RSS) is measured per
process.  Baseline, in the same run: ``cp`` of the same file, once in and once
out.  The page cache is warm for every contender alike (the file was just written).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from conveyor.verify.targets import free_port

REPO = Path(__file__).resolve().parents[2]
console = Console(width=120)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and the child's peak RSS in MiB (via wait4's rusage)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss / 1024


def conveyor(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor.cli.main", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=args.dir))
    size = args.size_mib * 1024 * 1024
    try:
        model = scratch / "model"
        model.mkdir()
        with open(model / "weights.bin", "wb") as handle:
            for _ in range(args.size_mib):
                handle.write(os.urandom(1024 * 1024))
        rows: list[tuple[str, float, float]] = []

        cp_in, _ = timed(["cp", str(model / "weights.bin"), str(scratch / "copy-in.bin")], dict(os.environ))
        cp_out, _ = timed(["cp", str(scratch / "copy-in.bin"), str(scratch / "copy-out.bin")], dict(os.environ))
        (scratch / "copy-in.bin").unlink()
        (scratch / "copy-out.bin").unlink()
        rows.append(("cp in + cp out (baseline)", cp_in + cp_out, 0.0))

        env = {**os.environ, "CONVEYOR_HOME": str(scratch / "home-local")}
        env.pop("CONVEYOR_REGISTRY", None)
        register_s, register_rss = timed(conveyor("models", "register", str(model), "--name", "big", "--no-check"), env)
        download_s, download_rss = timed(conveyor("models", "download", "big:1", "-o", str(scratch / "dl-local")), env)
        rows.append(("local: register", register_s, register_rss))
        rows.append(("local: download", download_s, download_rss))
        shutil.rmtree(scratch / "dl-local")

        server_home = scratch / "home-server"
        server_env = {**os.environ, "CONVEYOR_HOME": str(server_home)}
        token = subprocess.run(
            conveyor("registry", "token", "create", "bench", "--scope", "write", "--json"),
            env=server_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        port = free_port()
        server = subprocess.Popen(
            conveyor("registry", "serve", "--port", str(port), "--log-level", "warning"),
            env=server_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            client_env = {
                **os.environ,
                "CONVEYOR_HOME": str(scratch / "home-client"),
                "CONVEYOR_REGISTRY": f"http://127.0.0.1:{port}",
                "CONVEYOR_TOKEN": json.loads(token.stdout)["token"],
            }
            up_s, up_rss = timed(conveyor("models", "register", str(model), "--name", "big", "--no-check"), client_env)
            down_s, down_rss = timed(
                conveyor("models", "download", "big:1", "-o", str(scratch / "dl-http")), client_env
            )
            server_rss = 0.0
            for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    server_rss = int(line.split()[1]) / 1024
        finally:
            server.terminate()
            server.wait(20)
        rows.append(("http: register (client)", up_s, up_rss))
        rows.append(("http: download (client)", down_s, down_rss))
        rows.append(("http: server process", 0.0, server_rss))

        table = Table(title=f"registry: one {args.size_mib} MiB file")
        for column in ("operation", "seconds", "MiB/s", "peak RSS MiB"):
            table.add_column(column, justify="left" if column == "operation" else "right")
        mib = size / 2**20
        for name, seconds, rss in rows:
            rate = f"{(2 * mib if 'baseline' in name else mib) / seconds:.0f}" if seconds else ""
            table.add_row(name, f"{seconds:.2f}" if seconds else "", rate, f"{rss:.0f}" if rss else "")
        console.print(table)
        baseline = cp_in + cp_out
        ratios = Table(title="ratios (throughput of register + download vs cp in + cp out)")
        ratios.add_column("path")
        ratios.add_column("measured", justify="right")
        ratios.add_column("target", justify="right")
        ratios.add_row("local register+download / cp", f"{baseline / (register_s + download_s):.2f}", ">= 0.50")
        ratios.add_row("http register+download / cp", f"{baseline / (up_s + down_s):.2f}", "report")
        peak = max(register_rss, download_rss, up_rss, down_rss, server_rss)
        ratios.add_row("peak RSS of any process (MiB)", f"{peak:.0f}", "< 200")
        console.print(ratios)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
