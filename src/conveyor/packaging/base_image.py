"""A base image made from Debian's own packages, for machines that cannot pull from Docker Hub.

``conveyor build`` starts from ``python:3.11-slim`` by default; behind a firewall, or wherever
Docker Hub is out of reach, that pull fails.  ``conveyor base-image`` makes an equivalent
(Debian bookworm, Python 3.11 and venv) with debootstrap from a Debian mirror and imports it into
the local engine, so ``conveyor build REF --base-image localhost/conveyor-base:bookworm`` works
with nothing but Debian's package archive.  Needs root (debootstrap) and podman or docker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from conveyor.errors import ConveyorError, InvalidInput

DEFAULT_IMAGE = "localhost/conveyor-base:bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def make_base_image(image: str = DEFAULT_IMAGE, mirror: str = DEFAULT_MIRROR, engine: str | None = None) -> str:
    """debootstrap bookworm (minbase, python3, python3-venv), import it as ``image``; its Python version."""
    engine = engine or shutil.which("podman") or shutil.which("docker")
    if not engine:
        raise ConveyorError("no container engine: install podman (or docker) first")
    if shutil.which("debootstrap") is None:
        raise ConveyorError("debootstrap is needed: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise InvalidInput("debootstrap needs root: run it with sudo")
    with tempfile.TemporaryDirectory(prefix="conveyor-rootfs-") as scratch:
        rootfs, archive = Path(scratch) / "rootfs", Path(scratch) / "rootfs.tar"
        _run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(rootfs), mirror],
            f"debootstrap from {mirror}",
        )
        for leftovers in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
            for path in leftovers.glob("*"):
                if path.is_file():
                    path.unlink()
        _run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], "packing the root file system")
        _run([engine, "import", "--change", 'CMD ["/bin/bash"]', str(archive), image], f"{engine} import")
    return _run([engine, "run", "--rm", image, "python3", "--version"], f"{image} python3 --version").strip()


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ConveyorError(f"{what} failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout
