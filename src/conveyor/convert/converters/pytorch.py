"""PyTorch models to ONNX: a TorchScript file (``torch.jit.save``), a ``torch.export`` program
(``torch.export.save``, ``.pt2``; ``conveyor.convert.convert_module`` saves an in-memory module as
one), exported by ``torch.onnx`` with a dynamic batch axis.

An input of one image's shape (channels 1 or 3, height, width) with one score per class out
becomes an ``image-classification`` model, served from PNG or JPEG with the normalisation the
user names (``--mean``/``--std``); anything else is served as raw tensors (``tensor``).  The
gate feeds both models the same inputs (the ``--sample`` array, or random images in the
model's own pixel range) and compares their answers: probabilities and labels for a
classifier, the outputs themselves for tensors.

A pickled module (``torch.save(model)``) or a state dict is refused: loading one needs the
training code, and runs it; TorchScript and torch.export files carry their graph.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.convert.conversion import Conversion, kept_original, quiet_exporter, write_folder
from conveyor.convert.frameworks import version_of
from conveyor.convert.gate import ConversionRefused, check_conversion, refusal
from conveyor.convert.options import ConvertOptions, computes_in_float32
from conveyor.errors import InvalidInput
from conveyor.extras import require
from conveyor.serving.spec import ImageInput, ModelSpec, ResolvedModel, Source

NAME = "pytorch"
ORDER = 20
SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".pt2")
GENERATED_INPUTS = 64
ZIP_MAGIC = b"PK\x03\x04"


def accepts(path: Path) -> bool:
    if path.suffix not in SUFFIXES or not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(4) == ZIP_MAGIC  # TorchScript and torch.export files are zip archives


def _load(path: Path, options: ConvertOptions) -> tuple[Any, Any, tuple[int, ...], str]:
    """(the callable original, what torch.onnx exports, one input's shape, how it was saved)."""
    torch = require("torch", extra="torch", for_="converting this model")
    if path.suffix == ".pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:  # torch raises RuntimeError and its own errors for a bad archive
            raise InvalidInput(f"{path.name}: not a torch.export program ({exc})") from None
        placeholders = [
            n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs
        ]
        if len(placeholders) != 1:
            raise InvalidInput(f"{path.name}: the program takes {len(placeholders)} inputs; Conveyor serves one")
        shape = placeholders[0].meta["val"].shape
        if isinstance(shape[0], int):
            raise InvalidInput(
                f"{path.name}: the program fixes the batch size to {shape[0]}; export it with a dynamic batch "
                "axis: torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))"
            )
        if not all(isinstance(d, int) for d in shape[1:]):
            raise InvalidInput(f"{path.name}: only the batch axis may be dynamic, the input is {list(shape)}")
        return program.module(), program, tuple(int(d) for d in shape[1:]), "torch.export"
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        raise InvalidInput(
            f"{path.name}: not a TorchScript file ({str(exc).split('.')[0]}). A pickled module or a state dict "
            "needs its training code: save it with torch.jit.save(torch.jit.trace(model, x)) or "
            "torch.export.save(torch.export.export(...)), or use conveyor.convert.convert_module"
        ) from None
    if options.input_shape is None:
        raise InvalidInput(
            f"{path.name}: a TorchScript file does not record its input's shape: pass --input-shape C,H,W"
        )
    return module.eval(), module, options.input_shape, "torchscript"


def _export(exportable: Any, shape: tuple[int, ...], saved_as: str, out: Path) -> None:
    torch = require("torch", extra="torch", for_="converting this model")
    quiet_exporter()
    example = torch.rand(2, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if saved_as == "torchscript":  # the TorchScript exporter: the only one that reads a ScriptModule
            torch.onnx.export(
                exportable, (example,), str(out), dynamo=False, input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )  # fmt: skip
            return
        require("onnxscript", extra="torch", for_="converting this model")
        program = exportable
        if not hasattr(exportable, "graph_signature"):  # a module: trace it with a dynamic batch first
            program = torch.export.export(exportable, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        exported = torch.onnx.export(
            program, dynamo=True, input_names=["input"], output_names=["output"], verbose=False
        )
        exported.save(str(out))


def _inputs(shape: tuple[int, ...], image: ImageInput | None, options: ConvertOptions) -> tuple[np.ndarray, str]:
    if options.sample is not None:
        if options.sample.suffix != ".npy":
            raise InvalidInput(f"{options.sample.name}: a PyTorch model's sample is a .npy array of inputs")
        batch = np.load(options.sample, allow_pickle=False).astype(np.float32)
        if tuple(batch.shape[1:]) != shape:
            raise InvalidInput(
                f"{options.sample.name}: inputs of shape {list(batch.shape[1:])}, the model takes {list(shape)}"
            )
        return batch, options.sample.name
    random = np.random.default_rng(20261205)
    if image is None:
        return random.normal(0, 1, (GENERATED_INPUTS, *shape)).astype(np.float32), "generated inputs"
    # random pictures, normalised as the server will: pixels 0-255, smoothed so shapes, not noise, decide
    pixels = random.uniform(0, 255, (GENERATED_INPUTS, *shape)).astype(np.float32)
    smoothed = (pixels + np.roll(pixels, 1, axis=-1) + np.roll(pixels, 1, axis=-2)) / 3
    mean = np.array(image.mean, np.float32).reshape(-1, 1, 1)
    std = np.array(image.std, np.float32).reshape(-1, 1, 1)
    return ((smoothed * image.scale - mean) / std).astype(np.float32), "generated images"


def _image(shape: tuple[int, ...], options: ConvertOptions) -> ImageInput:
    from pydantic import ValidationError

    try:
        return ImageInput(channels=shape[0], height=shape[1], width=shape[2], mean=options.mean, std=options.std)
    except ValidationError as exc:
        raise InvalidInput(
            "--mean/--std: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        ) from None


def _original_scores(original: Any, batch: np.ndarray) -> np.ndarray:
    torch = require("torch", extra="torch", for_="converting this model")
    with torch.no_grad():
        out = original(torch.from_numpy(batch))
    if isinstance(out, tuple | list):
        out = out[0]
    return out.detach().cpu().numpy().astype(np.float64).reshape(len(batch), -1)


def convert(path: Path, out: Path, name: str, options: ConvertOptions) -> Conversion:
    """Convert a TorchScript or torch.export file into the folder OUT (created), through the gate."""
    from conveyor.serving.image import ImageClassifier
    from conveyor.serving.model import TextClassifier, softmax
    from conveyor.serving.runtime import RuntimeOptions

    computes_in_float32(options, "a PyTorch model")
    original, exportable, shape, saved_as = _load(path, options)
    probe = _original_scores(original, np.zeros((1, *shape), np.float32))
    classes = probe.shape[1]
    looks_like_image = len(shape) == 3 and shape[0] in (1, 3)
    task = options.task or ("image-classification" if looks_like_image else "tensor")
    if task == "image-classification" and not looks_like_image:
        raise InvalidInput(
            f"an image-classification model takes [N, 1 or 3, H, W]; this one takes [N, {', '.join(map(str, shape))}]"
        )
    labels = options.labels or [str(i) for i in range(classes)]
    if task == "image-classification" and len(labels) != classes:
        raise InvalidInput(f"--labels names {len(labels)} classes, the model answers {classes}")
    image = _image(shape, options) if task == "image-classification" else None
    spec = ModelSpec(
        name=name,
        task=task,
        **({"labels": labels, "positive_label": options.positive_label} if image else {}),
        tokenizer_file=None,
        image=image,
        source=Source(framework="pytorch", framework_version=version_of("torch"), file=kept_original(path),
                      converter=f"torch.onnx ({saved_as})"),
    )  # fmt: skip
    batch, origin = _inputs(shape, image, options)
    reference = _original_scores(original, batch)
    # everything the user can get wrong is checked above: from here on, OUT is written and, if refused, removed
    out.mkdir(parents=True, exist_ok=True)
    try:
        _export(exportable, shape, saved_as, out / "model.onnx")
    except InvalidInput:
        raise
    except Exception as exc:  # the exporters raise many kinds
        shutil.rmtree(out, ignore_errors=True)
        raise InvalidInput(f"{path.name}: torch.onnx could not export it: {str(exc).splitlines()[0]}") from None
    resolved = ResolvedModel(spec=spec, model_path=out / "model.onnx", tokenizer_path=None)
    if image is not None:
        served = ImageClassifier(resolved, RuntimeOptions())
        converted = served.score_batch(batch)
        reference = softmax(reference)
        check_task = "image-classification"
    else:
        session = TextClassifier(resolved, RuntimeOptions()).session
        converted = np.asarray(session.run({session.inputs[0].name: batch})[session.outputs[0].name], np.float64)
        check_task = "tensor"
    report = check_conversion(
        check_task, reference, converted.reshape(len(batch), -1), origin, options.agreement, options.tolerance
    )
    if not report.passed:
        shutil.rmtree(out, ignore_errors=True)
        described = [f"input {i} (mean {batch[i].mean():.3g})" for i in range(len(batch))]
        raise ConversionRefused(refusal(report, described, reference, converted, labels if image else []))
    write_folder(out, spec, path)
    return Conversion(spec=spec, report=report, folder=out)
