"""What every converter hands back, and the model folder it writes once the gate has passed.

A conversion ends the same way whatever the framework: ``model.onnx`` (written by the converter),
``model.yaml`` (the spec), the original file or folder under ``original/``, and a
:class:`Conversion` with the gate's report.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from conveyor.convert.gate import GateReport
from conveyor.registry.refs import safe_file_name
from conveyor.serving.spec import ORIGINAL_FOLDER, SPEC_FILE, ModelSpec

TEXT_ONLY = {"max_length", "description", "tokenizer_file"}


@dataclass
class Conversion:
    spec: ModelSpec
    report: GateReport
    folder: Path


def kept_original(original: Path) -> str:
    """Where a version keeps the framework's own file or folder: ``original/<its name, made path-safe>``."""
    return f"{ORIGINAL_FOLDER}/{safe_file_name(original.name)}"


def write_folder(out: Path, spec: ModelSpec, original: Path) -> None:
    """After the gate passed: the spec beside ``model.onnx``, the original file (or folder) under ``original/``."""
    import yaml

    (out / ORIGINAL_FOLDER).mkdir(exist_ok=True)
    if original.is_dir():
        shutil.copytree(original, out / kept_original(original))
    else:
        shutil.copy2(original, out / kept_original(original))
    text_only = set() if spec.task == "text-classification" else TEXT_ONLY
    (out / SPEC_FILE).write_text(
        yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True, exclude=text_only), sort_keys=False)
    )


def quiet_exporter() -> None:
    """torch.onnx logs a warning per missing optional package (torchvision) and prints its steps."""
    import logging

    for name in ("torch.onnx", "torch._export", "torch.export", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
