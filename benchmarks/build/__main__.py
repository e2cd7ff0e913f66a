"""Image build benchmark, run by hand:

    .venv/bin/python -m benchmarks.build [--ref sentiment@production] [--base-image IMAGE] [--builder podman]

Builds one registered version two ways with a real builder, each cold (``--no-cache``) and
again after a one-line code change, and reports build seconds and image size:

* the naive recipe (``naive/``): ``COPY . /app``, ``pip install`` of unpinned packages from the
  package index, root user, no health check: the classic hand-written Dockerfile;
* Conveyor's build context (``conveyor package``): hashed pins installed offline from the
  wheelhouse, then the model, then the server code, each its own layer.

The baseline is the naive recipe, measured in the same run on the same base image.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from conveyor.packaging.builders import detect_builder, inspect
from conveyor.packaging.context import default_wheelhouse, write_context
from conveyor.registry.config import open_registry

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
console = Console(width=120)


def build(engine: str, context: Path, tag: str, *, no_cache: bool, extra: list[str]) -> float:
    """Seconds one build takes (fails loudly with the builder's output)."""
    command = [engine, "build", "--format", "docker"] if engine != "docker" else ["docker", "build"]
    command += ["-t", tag, *extra]
    if no_cache:
        command.append("--no-cache")
    started = time.perf_counter()
    result = subprocess.run([*command, str(context)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(result.stdout + result.stderr)[-2000:]}")
    return time.perf_counter() - started


def touch_code(path: Path) -> None:
    """The one-line code change of a developer's next commit."""
    with open(path, "a") as handle:
        handle.write(f"\n# rebuilt at {time.time()}\n")


def naive_context(model: Path, out: Path) -> Path:
    shutil.copytree(HERE / "naive", out)
    shutil.copytree(model, out / "model", ignore=shutil.ignore_patterns(".conveyor-*"))
    if not (out / "model" / "tokenizer.json").is_file() or not (out / "model" / "model.onnx").is_file():
        raise SystemExit("the naive recipe serves model.onnx with tokenizer.json: this version has neither")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default="sentiment@production", help="registered version to build")
    parser.add_argument("--base-image", default="localhost/conveyor-base:bookworm")
    parser.add_argument("--builder", default=None, help="podman or docker [default: the first found]")
    args = parser.parse_args()
    engine = detect_builder(args.builder)
    if engine == "buildah":
        raise SystemExit("use podman or docker: the benchmark inspects images with the engine")
    if subprocess.run([engine, "image", "inspect", args.base_image], capture_output=True).returncode != 0:
        raise SystemExit(f"base image {args.base_image} not found: make it with scripts/make-base-image.sh (root)")
    registry = open_registry()
    version, folder = registry.cached(args.ref)
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-bench-build-"))
    # pip inside the naive build reaches the package index like a developer's machine would.
    naive_extra = ["--network", "host", "--build-arg", f"BASE={args.base_image}"]
    if CA_BUNDLE.is_file() and engine == "podman":
        naive_extra += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    rows: list[tuple[str, float, float, float]] = []
    try:
        console.print(f"{engine}: naive recipe for {version.ref} ...")
        naive = naive_context(folder, scratch / "naive")
        cold = build(engine, naive, "localhost/bench-naive:1", no_cache=True, extra=naive_extra)
        touch_code(naive / "app.py")
        warm = build(engine, naive, "localhost/bench-naive:1", no_cache=False, extra=naive_extra)
        size = inspect("localhost/bench-naive:1", engine)["Size"] / 2**20
        rows.append(("naive recipe", cold, warm, size))

        console.print(f"{engine}: conveyor build context for {version.ref} ...")
        context = scratch / "conveyor"
        write_context(version, folder, context, args.base_image, wheel_cache=default_wheelhouse())
        cold = build(engine, context, "localhost/bench-conveyor:1", no_cache=True, extra=[])
        touch_code(context / "app" / "conveyor" / "serving" / "app.py")
        warm = build(engine, context, "localhost/bench-conveyor:1", no_cache=False, extra=[])
        size = inspect("localhost/bench-conveyor:1", engine)["Size"] / 2**20
        rows.append(("conveyor build context", cold, warm, size))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for tag in ("localhost/bench-naive:1", "localhost/bench-conveyor:1"):
            subprocess.run([engine, "rmi", "-f", tag], capture_output=True)

    table = Table(title=f"image builds of {version.ref} with {engine} on {args.base_image}")
    for column in ("recipe", "cold build s", "code-only rebuild s", "image size MiB"):
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for name, cold, warm, size in rows:
        table.add_row(name, f"{cold:.1f}", f"{warm:.1f}", f"{size:.0f}")
    console.print(table)
    (_, naive_cold, naive_warm, naive_size), (_, ours_cold, ours_warm, ours_size) = rows
    console.print(
        f"conveyor / naive: cold build {ours_cold / naive_cold:.2f}x, code-only rebuild {ours_warm / naive_warm:.2f}x, "
        f"size {ours_size / naive_size:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
