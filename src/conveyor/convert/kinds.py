"""Which converter takes a path: tabular model files, PyTorch files, transformers folders.

The one place ``conveyor models register`` asks; each converter decides from a file's suffix
and first bytes (or a folder's ``config.json``) without importing its framework.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.convert.convert import Conversion, convert_tabular, is_tabular_file
from conveyor.convert.huggingface import convert_transformers, is_transformers_folder
from conveyor.convert.options import ConvertOptions
from conveyor.convert.pytorch import convert_torch, is_torch_file
from conveyor.errors import InvalidInput


def is_framework_model(path: Path) -> bool:
    """Whether PATH is a trained model Conveyor converts to ONNX at registration."""
    path = Path(path)
    return is_torch_file(path) or is_tabular_file(path) or is_transformers_folder(path)


def convert_model(path: Path, out: Path, name: str, options: ConvertOptions | None = None) -> Conversion:
    """Convert PATH into the model folder OUT through its gate, or raise ConversionRefused."""
    path, options = Path(path), options or ConvertOptions()
    if is_transformers_folder(path):
        return convert_transformers(path, out, name, options)  # type: ignore[no-any-return]
    if is_torch_file(path):
        return convert_torch(path, out, name, options)  # type: ignore[no-any-return]
    unused = [n for n in ("input_shape", "task") if getattr(options, n)]
    if unused:
        flags = ", ".join("--" + n.replace("_", "-") for n in unused)
        raise InvalidInput(f"{flags}: for a PyTorch model only; a tabular model records its inputs")
    return convert_tabular(
        path, out, name, options.sample, options.agreement, options.tolerance, options.positive_label, options.labels
    )
