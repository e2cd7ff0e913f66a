"""What each install weighs, run by hand:

    .venv/bin/python -m benchmarks.install [--extras monitor,s3,...] [--json FILE]

Builds Conveyor's wheel (``uv build``) and installs it into a fresh virtual environment once
alone (``pip install conveyor-ml``, the core) and once with each extra (``conveyor-ml[EXTRA]``),
each with the versions the lock pins (``--constraint requirements.lock``), as a user's resolver
would pick them on the day the lock was made.  For each it prints the distributions installed,
the bytes on disk (every file of the venv, bytecode not compiled) and what the extra adds to the
core.  The frameworks' extras (torch, a GiB) are left out unless named.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "torch", "huggingface", "frameworks", "mlflow", "kfp")
TOOLING = ("dev", "bench", "reference")
console = Console(width=120)


def feature_extras() -> list[str]:
    """The extras of pyproject.toml that are features (not the frameworks, not the project's tooling)."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return [e for e in extras if e not in FRAMEWORKS + TOOLING]


def build_wheel(out: Path) -> Path:
    subprocess.run([str(UV), "build", "--wheel", "--quiet", "--out-dir", str(out), str(REPO)], check=True)
    (wheel,) = out.glob("conveyor_ml-*.whl")
    return wheel


def measure(wheel: Path, extra: str | None, root: Path) -> dict[str, object]:
    """A fresh venv with the wheel (and ``extra``): its distributions and its size on disk."""
    venv = root / (extra or "core")
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    requirement = f"{wheel}[{extra}]" if extra else str(wheel)
    python = str(venv / "bin" / "python")
    install = [str(UV), "pip", "install", "--quiet", "--python", python, requirement]
    subprocess.run([*install, "--constraint", str(REPO / "requirements.lock")], check=True)
    listing = subprocess.run(
        [str(UV), "pip", "list", "--python", python, "--format", "json"], capture_output=True, text=True, check=True
    )
    files = [p for p in venv.rglob("*") if p.is_file() and not p.is_symlink()]
    return {
        "extra": extra or "",
        "distributions": len(json.loads(listing.stdout)),
        "bytes": sum(p.stat().st_size for p in files),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extras", default=",".join(feature_extras()), help="comma-separated extras to measure")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-install-") as scratch:
        wheel = build_wheel(Path(scratch) / "dist")
        rows = [measure(wheel, None, Path(scratch))]
        rows += [measure(wheel, extra, Path(scratch)) for extra in args.extras.split(",") if extra]
    core = rows[0]
    table = Table(title=escape("pip install conveyor-ml[EXTRA]: a fresh venv, the lock's versions"))
    for column in ("install", "distributions", "MiB", "MB", "adds MiB"):
        table.add_column(column, justify="left" if column == "install" else "right")
    for row in rows:
        name = f"conveyor-ml[{row['extra']}]" if row["extra"] else "conveyor-ml"
        size = int(row["bytes"])  # type: ignore[call-overload]
        added = "" if row is core else f"+{(size - int(core['bytes'])) / 2**20:.0f}"  # type: ignore[call-overload]
        table.add_row(escape(name), str(row["distributions"]), f"{size / 2**20:.0f}", f"{size / 1e6:.0f}", added)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
