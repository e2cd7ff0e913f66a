"""Image size without the training framework, against the same image carrying it; run by hand:

    .venv/bin/python -m benchmarks.build.frameworks [--base-image IMAGE] [--kinds scikit-learn,xgboost,...]

For each kind a small real model is converted and registered in a scratch registry (the test
suite's models: tests/tabular_models.py, tests/deep_models.py), then built twice with podman on
the same base image:

* ``conveyor build``'s context: onnxruntime and the server, the version's ONNX file;
* the same context with the training framework's pinned closure added to its requirements
  (scikit-learn; xgboost-cpu; lightgbm; torch CPU; torch CPU + transformers): what an image that
  serves the framework's own model file, as MLServer's and BentoML's runtimes do, must carry at
  least, before its own server code.

Prints each image's size and the ratio. torch's CPU wheel is taken from /opt/wheels when it is
there (PyPI has no +cpu builds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.build.__main__ import build
from conveyor.packaging.builders import inspect
from conveyor.packaging.context import default_wheelhouse, write_context
from conveyor.packaging.requirements import closure, download_wheels, requirements_text
from conveyor.registry.config import open_local

console = Console(width=120)
FRAMEWORKS = {
    "scikit-learn": ["scikit-learn"],
    "xgboost": ["xgboost-cpu"],  # the CPU-only wheel this project pins; PyPI's xgboost adds NCCL (~200 MB)
    "lightgbm": ["lightgbm"],
    "pytorch": ["torch"],
    "huggingface": ["torch", "transformers"],
}


def register_models(scratch: Path) -> dict[str, str]:
    """One registered version per kind (kind -> ref), in the embedded registry under CONVEYOR_HOME."""
    from tests.deep_models import build as build_deep
    from tests.tabular_models import train

    from conveyor.convert import ConvertOptions, convert_model

    tabular, deep = train(scratch / "tabular"), build_deep(scratch / "deep")
    sources = {
        "scikit-learn": (tabular.risk, ConvertOptions(sample=tabular.risk_sample)),
        "xgboost": (tabular.cancer_xgb, ConvertOptions(sample=tabular.cancer_sample)),
        "lightgbm": (tabular.cancer_lgb, ConvertOptions(sample=tabular.cancer_sample)),
        "pytorch": (deep.digits_export, ConvertOptions(labels=[str(i) for i in range(10)])),
        "huggingface": (deep.sentiment_hf, ConvertOptions()),
    }
    registry, refs = open_local(), {}
    for kind, (source, options) in sources.items():
        name = kind.replace("-", "")
        converted = convert_model(source, scratch / "converted" / name, name, options)
        refs[kind] = registry.register(converted.folder, name).ref
    return refs


def with_framework(context: Path, roots: list[str], cache: Path) -> None:
    """Add the framework's pinned closure to the context's requirements and wheels."""
    served = [line.split("==")[0] for line in (context / "requirements.txt").read_text().splitlines() if "==" in line]
    pins = download_wheels(closure(served + roots), context / "wheels", cache=cache)
    (context / "requirements.txt").write_text(requirements_text(pins))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-image", default="localhost/conveyor-base:bookworm")
    parser.add_argument("--kinds", default=",".join(FRAMEWORKS), help="comma-separated: " + ", ".join(FRAMEWORKS))
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="conveyor-bench-frameworks-"))
    os.environ["CONVEYOR_HOME"] = str(scratch / "home")
    os.environ.pop("CONVEYOR_REGISTRY", None)
    cache = default_wheelhouse()
    for wheel in Path("/opt/wheels").glob("torch-*.whl"):
        if not (cache / wheel.name).exists():
            cache.mkdir(parents=True, exist_ok=True)
            shutil.copy(wheel, cache / wheel.name)
    rows = []
    try:
        refs = register_models(scratch)
        registry = open_local()
        for kind in kinds:
            version, folder = registry.cached(refs[kind])
            sizes = []
            for carrying in (False, True):
                context = scratch / f"{kind}-{carrying}"
                write_context(version, folder, context, args.base_image, wheel_cache=cache)
                if carrying:
                    with_framework(context, FRAMEWORKS[kind], cache)
                tag = f"localhost/bench-frameworks-{kind}:{'carrying' if carrying else 'conveyor'}"
                console.print(f"podman: {kind} {'with ' + '+'.join(FRAMEWORKS[kind]) if carrying else 'conveyor'} ...")
                build("podman", context, tag, no_cache=False, extra=[])
                sizes.append(inspect(tag, "podman")["Size"] / 2**20)
                subprocess.run(["podman", "rmi", tag], capture_output=True)
            rows.append((kind, *sizes))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = Table(title=f"image size, MiB, on {args.base_image}")
    for column in ("kind", "conveyor build", "with the framework", "framework / conveyor"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, ours, theirs in rows:
        table.add_row(kind, f"{ours:.0f}", f"{theirs:.0f}", f"{theirs / ours:.1f}x")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
