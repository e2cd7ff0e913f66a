"""Each peer server's own virtual environment, made on first use from its pins and kept in a cache.

The folder is named after the pins' digest, so changing a pin makes a new environment and an
unchanged one is reused across runs and checkouts.  ``uv`` (in Conveyor's environment) creates it
and installs from PyPI; a half-made environment is never reused (the marker file is written last).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

PINS = Path(__file__).parent
#: where the environments live: $CONVEYOR_BENCH_CACHE, else ~/.cache/conveyor/bench-peers
CACHE_VARIABLE = "CONVEYOR_BENCH_CACHE"
READY = ".installed"


def cache_root() -> Path:
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured) if configured else Path.home() / ".cache" / "conveyor" / "bench-peers"


def venv_dir(peer: str, root: Path | None = None) -> Path:
    """Where PEER's environment lives: its name and the digest of its pins (and this Python's version)."""
    pins = (PINS / f"{peer}.txt").read_bytes()
    digest = hashlib.sha256(pins + sys.version.split()[0].encode()).hexdigest()[:12]
    return (root or cache_root()) / f"{peer}-{digest}"


def peer_python(peer: str, root: Path | None = None) -> Path:
    """The Python of PEER's environment, made now if it is not there yet."""
    folder = venv_dir(peer, root)
    python = folder / "bin" / "python"
    if (folder / READY).is_file():
        return python
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{peer}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once make it once
        if (folder / READY).is_file():
            return python
        shutil.rmtree(folder, ignore_errors=True)
        uv = Path(sys.executable).parent / "uv"
        print(f"making {peer}'s environment in {folder} (once) ...", flush=True)
        subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(folder)], check=True)
        install = [str(uv), "pip", "install", "--quiet", "--python", str(python), "-r", str(PINS / f"{peer}.txt")]
        subprocess.run(install, check=True)
        (folder / READY).write_text("")
    return python
