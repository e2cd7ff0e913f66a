"""Dashboard benchmark, run by hand (``make bench-dashboard``):

    .venv/bin/python -m benchmarks.dashboard [--models 1000] [--versions 20] [--rollouts 200] [--repeat 15]

Fills an embedded registry (SQLite, one shared blob) with MODELS x VERSIONS versions (aliases,
tags, metrics on each) and writes ROLLOUTS rollout records with analysis history, then times
each page's server time in-process (Starlette's TestClient: routing, the registry queries,
the templates; no network), interleaving pages and repeating. Prints the median and the range
per page against the target of 100 ms, and the baseline of the same run: the bare
``registry.list_models()`` / ``list_versions()`` calls under the pages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

TARGET_MS = 100.0
console = Console()


def populate(home: Path, models: int, versions: int, rollouts: int) -> None:
    from conveyor.registry.config import open_local
    from conveyor.registry.records import FileEntry, Lineage, NewVersion
    from conveyor.rollout.status import AnalysisRun, Backend, RolloutStatus, StatusStore

    registry = open_local()
    seed = home / "seed"
    seed.mkdir()
    (seed / "model.onnx").write_bytes(os.urandom(4096))
    first = registry.register(seed, "m0000", lineage=None)
    entry = first.files[0]
    for m in track(range(models), description="registering versions", console=console):
        name = f"m{m:04d}"
        for v in range(1 if m == 0 else 0, versions):
            registry.create_version(
                name,
                NewVersion(
                    description=f"version {v + 1} of {name}",
                    files=[FileEntry(path=entry.path, sha256=entry.sha256, size=entry.size)],
                    tags={"team": "nlp", "stage": "candidate" if v % 2 else "tested"},
                    lineage=Lineage(source="benchmark", git_commit="0" * 40, metrics={"accuracy": 0.8 + v / 1000}),
                    aliases=["production"] if v == versions - 2 else [],
                ),
            )
    for r in track(range(rollouts), description="writing rollouts", console=console):
        status = RolloutStatus(
            service=f"svc-{r:03d}",
            strategy="canary",
            ref=f"m{r:04d}:{versions}",
            router="http://127.0.0.1:9",  # nothing listens: the page says the router is unreachable
            steps=[10, 25, 50, 100],
            step_index=r % 4,
            interval_s=30,
            phase="progressing" if r % 3 else "succeeded",
            weights={"stable": 75.0, "canary": 25.0},
            stable=Backend(ref=f"m{r:04d}:{versions - 1}", version=f"m{r:04d}:{versions - 1}"),
            canary=Backend(ref=f"m{r:04d}:{versions}", version=f"m{r:04d}:{versions}"),
        )
        for step in range(r % 4 + 1):
            status.analysis.append(
                AnalysisRun(
                    at=time.time() - 60 * step,
                    stage="canary",
                    step=step,
                    weight=status.steps[step],
                    outcome="successful",
                    measurements={"canary_requests": 120, "canary_error_rate": 0.0, "canary_p99_ms": 12.5},
                )
            )
            status.note(f"step {step + 1}: analysis successful")
        StatusStore(status.service).create(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-ui-") as tmp:
        home = Path(tmp)
        os.environ["CONVEYOR_HOME"] = str(home)
        started = time.perf_counter()
        populate(home, args.models, args.versions, args.rollouts)
        console.print(
            f"{args.models} models x {args.versions} versions, {args.rollouts} rollouts "
            f"written in {time.perf_counter() - started:.0f}s"
        )
        from starlette.testclient import TestClient

        from conveyor.registry.config import open_local
        from conveyor.ui.app import create_app

        registry = open_local()
        client = TestClient(create_app(registry, tokens=registry.tokens))
        middle = f"m{args.models // 2:04d}"
        pages = {
            "models (page 1 of 20)": "/models",
            "models search": "/models?q=m05",
            "models page 10": "/models?page=10",
            f"model ({args.versions} versions)": f"/models/{middle}",
            "version": f"/models/{middle}/versions/{args.versions}",
            f"rollouts ({args.rollouts})": "/rollouts",
            "rollout": "/rollouts/svc-101",
            "pipelines": "/pipelines",
        }
        calls = {
            "baseline: registry.list_models()": registry.list_models,
            "baseline: registry.list_versions()": lambda: registry.list_versions(middle, True),
        }
        for path in pages.values():  # warm: templates compiled, signature read once
            assert client.get(path).status_code == 200, path
        times: dict[str, list[float]] = {name: [] for name in [*pages, *calls]}
        for _ in range(args.repeat):
            for name, path in pages.items():
                began = time.perf_counter()
                response = client.get(path)
                times[name].append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200
            for name, call in calls.items():
                began = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - began) * 1000)
    table = Table(title=f"dashboard server time, {args.repeat} rounds interleaved (ms)")
    for column in ("page", "median", "range", "target", "met"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for name, values in times.items():
        median = statistics.median(values)
        baseline = name.startswith("baseline")
        table.add_row(
            name,
            f"{median:.1f}",
            f"{min(values):.1f}-{max(values):.1f}",
            "" if baseline else f"< {TARGET_MS:.0f}",
            "" if baseline else ("yes" if median < TARGET_MS else "NO"),
        )
    console.print(table)
    from benchmarks.serving.__main__ import machine

    console.print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
