"""Intake: refuse at registration what ``conveyor serve`` could never load.

A registry stores any bytes, but a version that cannot be served fails much later and far
away (a server that exits with INVALID_PROTOBUF, an image built around a text file).  So
``conveyor models register`` and the pipeline's ``register`` step ask this module first,
applying the one rule every command serves a folder by (``spec.locate_model``): a
``model.yaml`` that validates and names files that are there, or exactly one ``.onnx`` file;
every ``.onnx`` file must parse as an ONNX model with inputs and outputs, and a
``tokenizer.json`` must load with the ``tokenizers`` library, and a tensor kept as external data
must name a registered file inside the model's folder (onnxruntime refuses any other).  Only headers are read (the
graph's weights are skipped), so a model of gigabytes is checked in milliseconds.

The registry itself does not import this (it builds on no serving code): callers pass
``check_servable`` to ``register(check=...)``; ``--no-check`` stores other files as they are.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from conveyor.errors import InvalidInput, ModelLoadError
from conveyor.registry.onnx_info import external_data, read_signature
from conveyor.serving.spec import SPEC_FILE, load_spec_file

HINT = "(conveyor models register --no-check stores files that are not a servable model)"


def check_servable(files: list[tuple[str, Path]]) -> None:
    """Raise InvalidInput naming the file and the reason when ``files`` (path in version, local path) cannot serve."""
    paths = dict(files)
    for relative, local in files:
        if relative.endswith(".onnx"):
            _check_onnx(relative, local)
            _check_external_data(relative, local, paths)
        elif Path(relative).name == "tokenizer.json":
            _check_tokenizer(relative, local)
    specs = [relative for relative in paths if relative == SPEC_FILE]
    if specs:
        try:
            spec = load_spec_file(paths[SPEC_FILE])
        except ModelLoadError as exc:
            raise InvalidInput(f"{SPEC_FILE} does not hold: {_after_path(exc)} {HINT}") from None
        needed = [spec.model_file] + ([spec.tokenizer_file] if spec.task.tokenized and spec.tokenizer_file else [])
        for name in needed:
            if name not in paths:
                raise InvalidInput(f"{SPEC_FILE} names {name}, which is not among the files registered {HINT}")
        if spec.task.generates:
            _check_gguf(spec.model_file, paths[spec.model_file])
        elif not spec.model_file.endswith(".onnx"):
            _check_onnx(spec.model_file, paths[spec.model_file])
        return
    onnx = [relative for relative in paths if relative.endswith(".onnx")]
    if len(onnx) != 1:
        names = ", ".join(sorted(paths)[:5]) + (", ..." if len(paths) > 5 else "")
        found = "no .onnx file" if not onnx else f"{len(onnx)} .onnx files and no {SPEC_FILE} to say which serves"
        raise InvalidInput(
            f"nothing here can be served ({names}): {found}; register one ONNX model (with tokenizer.json "
            f"beside it for text) or a folder with a {SPEC_FILE} {HINT}"
        )


def _check_onnx(relative: str, local: Path) -> None:
    try:
        signature = read_signature(local)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{relative} is not an ONNX model ({exc}) {HINT}") from None
    except Exception as exc:  # protobuf's DecodeError for bytes that are no message at all
        raise InvalidInput(f"{relative} is not an ONNX model ({type(exc).__name__}) {HINT}") from None
    if not signature.get("opsets") or not signature["inputs"] or not signature["outputs"]:
        raise InvalidInput(
            f"{relative} is not an ONNX model: it declares no operator set, inputs or outputs ({local.stat().st_size} "
            f"bytes) {HINT}"
        )


def _check_gguf(relative: str, local: Path) -> None:
    """A GGUF file starts with its magic and a format version llama.cpp reads (2 or 3)."""
    with local.open("rb") as handle:
        head = handle.read(8)
    if head[:4] != b"GGUF" or int.from_bytes(head[4:8], "little") not in (2, 3):
        raise InvalidInput(f"{relative} is not a GGUF model file (version 2 or 3) {HINT}")


def _check_external_data(relative: str, local: Path, paths: dict[str, Path]) -> None:
    """Weights kept beside the model must be among its files: onnxruntime reads no others (absolute
    paths and ``..`` climbing out of the folder are refused when the model loads)."""
    try:
        tensors = external_data(local)
    except (ValueError, OSError, UnicodeDecodeError):
        return  # _check_onnx has said what is wrong with the file
    for tensor, location in tensors:
        inside = posixpath.normpath(posixpath.join(posixpath.dirname(relative), location)) if location else ""
        if not location or location.startswith(("/", "\\")) or ":" in location or inside.split("/")[0] == "..":
            raise InvalidInput(
                f"{relative}: tensor {tensor!r} keeps its data at {location!r}, outside the model's folder; "
                f"onnxruntime reads external data only from files beside the model {HINT}"
            )
        if inside not in paths:
            raise InvalidInput(
                f"{relative}: tensor {tensor!r} keeps its data in {location!r}, which is not among the files "
                f"registered {HINT}"
            )


def _check_tokenizer(relative: str, local: Path) -> None:
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(local))
    except Exception as exc:  # the Rust library raises its own Exception with the parse error
        raise InvalidInput(f"{relative} is not a tokenizers tokenizer.json ({exc}) {HINT}") from None


def _after_path(exc: ModelLoadError) -> str:
    return str(exc).split(": ", 1)[-1]
