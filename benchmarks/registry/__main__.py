"""Registry benchmark, run by hand:

    .venv/bin/python -m benchmarks.registry [--size-mib 1024]

Registers and downloads one file of random bytes through (a) the embedded
registry (SQLite + local blob store) and (b) the registry server over HTTP on
127.0.0.1, each in its own process so peak memory (max RSS) is measured per
process.  Baselines, interleaved with them in every round: ``cp`` of the same file, once in
and once out; and the same two copies each followed by ``sha256sum`` and ``sync`` of the copy,
the work a registry cannot skip (it must hash what it stores and must not lose an
acknowledged version).  The page cache is warm for every contender alike.
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


def _copy_pair(model: Path, scratch: Path, careful: bool) -> float:
    """cp in and cp out; careful: each copy also hashed (sha256sum) and synced, the work a registry must do."""
    total = 0.0
    copy_in, copy_out = scratch / "copy-in.bin", scratch / "copy-out.bin"
    for source, target in ((model / "weights.bin", copy_in), (copy_in, copy_out)):
        command = f"cp {source} {target}" + (f" && sha256sum {target} >/dev/null && sync {target}" if careful else "")
        total += timed(["sh", "-c", command], dict(os.environ))[0]
    copy_in.unlink()
    copy_out.unlink()
    return total


def _local(model: Path, scratch: Path, round_: int) -> tuple[float, float, float, float]:
    env = {**os.environ, "CONVEYOR_HOME": str(scratch / f"home-local-{round_}")}
    env.pop("CONVEYOR_REGISTRY", None)
    register_s, register_rss = timed(conveyor("models", "register", str(model), "--name", "big", "--no-check"), env)
    download_s, download_rss = timed(conveyor("models", "download", "big:1", "-o", str(scratch / "dl-local")), env)
    shutil.rmtree(scratch / "dl-local")
    shutil.rmtree(scratch / f"home-local-{round_}")
    return register_s, register_rss, download_s, download_rss


def _http(model: Path, scratch: Path, round_: int) -> tuple[float, float, float, float, float]:
    server_home = scratch / f"home-server-{round_}"
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
        else:
            raise SystemExit("the registry server did not start")
        client_env = {
            **os.environ,
            "CONVEYOR_HOME": str(scratch / f"home-client-{round_}"),
            "CONVEYOR_REGISTRY": f"http://127.0.0.1:{port}",
            "CONVEYOR_TOKEN": json.loads(token.stdout)["token"],
        }
        up_s, up_rss = timed(conveyor("models", "register", str(model), "--name", "big", "--no-check"), client_env)
        down_s, down_rss = timed(conveyor("models", "download", "big:1", "-o", str(scratch / "dl-http")), client_env)
        server_rss = 0.0
        for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                server_rss = int(line.split()[1]) / 1024
    finally:
        server.terminate()
        server.wait(20)
    for leftover in (scratch / "dl-http", server_home, scratch / f"home-client-{round_}"):
        shutil.rmtree(leftover, ignore_errors=True)
    return up_s, up_rss, down_s, down_rss, server_rss


def _span(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.2f} ({ordered[0]:.2f}-{ordered[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every contender")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=args.dir))
    try:
        model = scratch / "model"
        model.mkdir()
        with open(model / "weights.bin", "wb") as handle:
            for _ in range(args.size_mib):
                handle.write(os.urandom(1024 * 1024))
        seconds: dict[str, list[float]] = {}
        rss: dict[str, float] = {}

        def record(name: str, value: float, peak: float = 0.0) -> None:
            seconds.setdefault(name, []).append(value)
            rss[name] = max(rss.get(name, 0.0), peak)

        for round_ in range(args.rounds):  # interleaved: the VM's drift hits every contender alike
            record("cp in + cp out (baseline)", _copy_pair(model, scratch, careful=False))
            record("cp + sha256sum + sync, in and out (baseline)", _copy_pair(model, scratch, careful=True))
            register_s, register_rss, download_s, download_rss = _local(model, scratch, round_)
            record("local: register", register_s, register_rss)
            record("local: download", download_s, download_rss)
            record("local: register + download", register_s + download_s)
            up_s, up_rss, down_s, down_rss, server_rss = _http(model, scratch, round_)
            record("http: register (client)", up_s, up_rss)
            record("http: download (client)", down_s, down_rss)
            record("http: register + download", up_s + down_s)
            rss["http: server process"] = max(rss.get("http: server process", 0.0), server_rss)

        mib = args.size_mib
        table = Table(title=f"registry: one {mib} MiB file, {args.rounds} interleaved rounds (median (min-max))")
        for column in ("operation", "seconds", "MiB/s (median)", "peak RSS MiB"):
            table.add_column(column, justify="left" if column == "operation" else "right")
        for name, values in seconds.items():
            moved = 2 * mib if ("baseline" in name or "+ download" in name) else mib
            median = sorted(values)[len(values) // 2]
            table.add_row(name, _span(values), f"{moved / median:.0f}", f"{rss[name]:.0f}" if rss.get(name) else "")
        table.add_row("http: server process", "", "", f"{rss['http: server process']:.0f}")
        console.print(table)

        ratios = Table(title="throughput ratios per round: baseline seconds / Conveyor seconds, median (min-max)")
        for column in ("path", "vs cp", "vs cp + sha256sum + sync", "target"):
            ratios.add_column(column, justify="left" if column == "path" else "right")
        plain, careful = seconds["cp in + cp out (baseline)"], seconds["cp + sha256sum + sync, in and out (baseline)"]
        for path, target in (("local", ">= 0.60 vs cp + sha256sum + sync"), ("http", "report")):
            ours = seconds[f"{path}: register + download"]
            ratios.add_row(
                f"{path} register + download",
                _span([b / o for b, o in zip(plain, ours, strict=True)]),
                _span([b / o for b, o in zip(careful, ours, strict=True)]),
                target,
            )
        ratios.add_row("peak RSS of any process (MiB)", f"{max(rss.values()):.0f}", "", "< 200")
        console.print(ratios)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
