"""The generative engine's wheel for an image: taken from the cache ``make engine`` fills, never compiled.

llama.cpp's Python binding (``llama-cpp-python``) is published as a source distribution only, so no
index has a wheel of it to download.  ``make engine`` compiles it once into a wheel kept in
``$CONVEYOR_ENGINE_WHEELS`` (default ``~/.cache/conveyor/engine-wheels``); a GGUF version's image
installs that wheel, by its sha256 like every other one, so the image holds no compiler and no
build of its own.  Without the wheel the build stops before anything starts, saying how to make it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from conveyor.errors import ConveyorError
from conveyor.packaging.requirements import Pin, image_tags

ENGINE = "llama-cpp-python"
ENGINE_WHEELS_ENV = "CONVEYOR_ENGINE_WHEELS"


def engine_wheels() -> Path:
    """Where the engine's wheels are kept: ``$CONVEYOR_ENGINE_WHEELS``, else ``~/.cache/conveyor/engine-wheels``."""
    return Path(os.environ.get(ENGINE_WHEELS_ENV) or Path.home() / ".cache" / "conveyor" / "engine-wheels")


def is_engine(pin: Pin) -> bool:
    return canonicalize_name(pin.name) == ENGINE


def engine_wheel(pin: Pin, dest: Path, platform: str, folder: Path | None = None) -> Pin:
    """The engine's cached wheel for ``pin`` and ``platform``, copied into ``dest``, with its sha256."""
    folder = folder or engine_wheels()
    tags = image_tags(platform)
    for wheel in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        try:
            name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        if name == ENGINE and version == Version(pin.version) and wheel_tags & tags:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(wheel, dest / wheel.name)
            return Pin(pin.name, pin.version, wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest())
    raise ConveyorError(
        f"no wheel of the generative engine {ENGINE}=={pin.version} for {platform} in {folder}: it is published "
        "as a source distribution only, so build its wheel once with `make engine` in a checkout of Conveyor "
        f"(or set {ENGINE_WHEELS_ENV} to the folder holding it); the image installs that wheel and compiles nothing"
    )
