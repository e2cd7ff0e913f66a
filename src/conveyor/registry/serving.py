"""Turn a registry reference into a local model folder the server can load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ModelLoadError
from conveyor.registry.config import open_registry
from conveyor.registry.local import Progress
from conveyor.registry.records import ModelVersion
from conveyor.serving.spec import SPEC_FILE


@dataclass(frozen=True)
class ServedVersion:
    version: ModelVersion
    model: Path  # a folder with model.yaml, or an .onnx file
    tokenizer: Path | None


def fetch_for_serving(
    ref: str, progress: Progress | None = None, on_notice: Callable[[str], None] | None = None
) -> ServedVersion:
    """The version ``ref`` points at, from the local cache: downloaded once, re-verified by digest each time."""
    version, folder = open_registry().cached(ref, progress, on_notice)
    if (folder / SPEC_FILE).is_file():
        return ServedVersion(version, folder, None)
    onnx_files = [folder / f.path for f in version.files if f.path.endswith(".onnx")]
    if len(onnx_files) != 1:
        raise ModelLoadError(
            f"{version.ref} has no {SPEC_FILE} and {len(onnx_files)} .onnx files: register a folder with a "
            f"{SPEC_FILE}, or exactly one .onnx file (with tokenizer.json beside it for text)"
        )
    tokenizer = folder / "tokenizer.json"
    return ServedVersion(version, onnx_files[0], tokenizer if tokenizer.is_file() else None)
