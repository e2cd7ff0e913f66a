"""The image's Python dependencies: exactly the versions tested here, as a hashed wheelhouse.

What the image needs is read from conveyor-ml's own declaration (``pyproject.toml``, as the
installed distribution's ``Requires-Dist``): the core requirements, which ``conveyor serve``
runs on, plus the model's task's extra (``[images]`` for image classification), never a list
kept here.  We walk their dependency closure in the installed environment
(``importlib.metadata``), evaluating markers for the image's platform, pin each to the version
installed here, download those wheels for the image's platform, and write ``requirements.txt``
with every wheel's sha256.  The image then installs offline with ``pip install --no-index
--require-hashes``: no resolver, no network, no surprise release.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from conveyor.errors import ConveyorError
from conveyor.extras import require
from conveyor.filelock import exclusive

DISTRIBUTION = "conveyor-ml"

PLATFORMS = {
    "linux/amd64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"],
    "linux/arm64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"],
}
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    wheel: str = ""
    sha256: str = ""


def _environment(platform: str) -> dict[str, str]:
    env = {key: str(value) for key, value in default_environment().items()}
    env.update(
        {
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": MACHINES[platform],
            "python_version": "3.11",
            "python_full_version": "3.11.2",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
        }
    )
    return env


def image_roots(extras: Iterable[str] = (), platform: str = "linux/amd64") -> list[str]:
    """What an image installs on ``platform``: conveyor-ml's core requirements and those of ``extras``.

    Read from the installed distribution's metadata, the one declaration of its dependencies
    (an extra naming ``conveyor-ml[other]`` brings that extra's too)."""
    try:
        requires = distribution(DISTRIBUTION).requires or []
    except PackageNotFoundError:
        raise ConveyorError(f"{DISTRIBUTION} is not installed here: its metadata says what the image needs") from None
    env = _environment(platform)
    wanted, roots = set(extras), []
    pending = ["", *sorted(wanted)]
    while pending:
        extra = pending.pop()
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({**env, "extra": extra}):
                continue
            if requirement.marker is None and extra:
                continue  # a core requirement, already taken with extra ""
            if canonicalize_name(requirement.name) == DISTRIBUTION:
                pending += sorted(set(requirement.extras) - wanted)
                wanted |= set(requirement.extras)
                continue
            name = requirement.name + (f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else "")
            roots.append(name)
    return sorted(set(roots))


def closure(roots: list[str], platform: str = "linux/amd64") -> list[Pin]:
    """Every distribution the roots (``name`` or ``name[extra]``) need on ``platform``, pinned as installed here."""
    env = _environment(platform)
    pins: dict[str, Pin] = {}
    queue = [(Requirement(root).name, frozenset(Requirement(root).extras)) for root in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        name, extras = queue.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise ConveyorError(f"{name} is needed in the image but not installed here") from None
        pins[canonicalize_name(name)] = Pin(canonicalize_name(dist.metadata["Name"]), dist.version)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None:
                wanted = ["", *sorted(extras)]
                if not any(requirement.marker.evaluate({**env, "extra": extra}) for extra in wanted):
                    continue
            queue.append((requirement.name, frozenset(requirement.extras)))
    return sorted(pins.values(), key=lambda p: p.name)


def image_tags(platform: str) -> frozenset[Tag]:
    """The wheel tags pip accepts in the image: CPython 3.11 on ``platform``."""
    platforms = PLATFORMS[platform]
    cpython = cpython_tags((3, 11), abis=["cp311", "abi3", "none"], platforms=platforms)
    return frozenset([*cpython, *compatible_tags((3, 11), "cp311", platforms)])


def download_wheels(pins: list[Pin], dest: Path, platform: str = "linux/amd64", cache: Path | None = None) -> list[Pin]:
    """One wheel per pin for the image's platform (cp311); returns the pins with file and sha256.

    Wheels already in ``cache`` for that platform are not asked for again: a rebuild with
    unchanged pins needs no index at all (offline, and no pip resolver run).
    """
    target = cache or dest
    target.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    tags = image_tags(platform)
    # two builds sharing a wheelhouse: one downloads, the other waits, neither reads half a wheel
    with exclusive(target / ".lock"):
        wheels = _wheels(target, tags)
        missing = [pin for pin in pins if _key(pin) not in wheels]
        if missing:
            _pip_download(missing, target, platform)
            wheels = _wheels(target, tags)
        done = []
        for pin in pins:
            wheel = wheels.get(_key(pin))
            if wheel is None:
                raise ConveyorError(f"no wheel of {pin.name}=={pin.version} for the image's platform")
            data = wheel.read_bytes()
            if cache is not None:
                (dest / wheel.name).write_bytes(data)
            done.append(Pin(pin.name, pin.version, wheel.name, hashlib.sha256(data).hexdigest()))
    return done


def _pip_download(pins: list[Pin], target: Path, platform: str) -> None:
    require("pip", extra="build", for_="downloading the image's wheels (conveyor package and build)")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
        "-d",
        str(target),
    ]
    for tag in PLATFORMS[platform]:
        command += ["--platform", tag]
    command += [f"{p.name}=={p.version}" for p in pins]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
        raise ConveyorError("could not download the pinned wheels: " + (" ".join(errors) or result.stderr[-500:]))


def _key(pin: Pin) -> tuple[str, Version]:
    return canonicalize_name(pin.name), Version(pin.version)


def _wheels(folder: Path, tags: frozenset[Tag]) -> dict[tuple[str, Version], Path]:
    """The wheels in ``folder`` that the image's platform can install, by (name, version)."""
    found: dict[tuple[str, Version], Path] = {}
    for wheel in sorted(folder.glob("*.whl")):
        try:
            name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        if wheel_tags & tags:
            found.setdefault((name, version), wheel)
    return found


def requirements_text(pins: list[Pin]) -> str:
    lines = ["# Pinned by conveyor package: the versions tested here, installed offline with --require-hashes."]
    for pin in pins:
        lines.append(f"{pin.name}=={pin.version} \\\n    --hash=sha256:{pin.sha256}")
    return "\n".join(lines) + "\n"
