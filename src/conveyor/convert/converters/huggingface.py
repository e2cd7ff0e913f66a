"""A Hugging Face transformers folder (``save_pretrained``: ``config.json``, the weights and a fast
tokenizer's ``tokenizer.json``) of a sequence classifier, to an ONNX text classifier.

The model loads from the folder only (``local_files_only``; no hub, no remote code), exports with
``torch.onnx``'s dynamo exporter with dynamic batch and sequence axes, and is served by the
same text path as the reference model: the folder's ``tokenizer.json``, length bucketing, the
``{"positive": true}`` answer.  The labels are the config's ``id2label`` (or ``--labels``).
The gate tokenizes the same texts for both models (the ``--sample``, or sentences made of the
tokenizer's own words, of many lengths) and compares probabilities and labels.
"""

from __future__ import annotations

import json
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
from conveyor.serving.spec import ModelSpec, ResolvedModel, Source

NAME = "huggingface"
ORDER = 10
GENERATED_TEXTS = 64
NAMES = ("input_ids", "attention_mask", "token_type_ids")


def accepts(path: Path) -> bool:
    config = path / "config.json"
    if not path.is_dir() or not config.is_file() or (path / "model.yaml").exists():
        return False
    try:
        raw = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and "model_type" in raw


def _labels(config: Any, options: ConvertOptions) -> list[str]:
    count = int(config.num_labels)
    if options.labels:
        if len(options.labels) != count:
            raise InvalidInput(f"--labels names {len(options.labels)} classes, the model answers {count}")
        return options.labels
    return [str(config.id2label.get(i, i)) for i in range(count)]


def _texts(options: ConvertOptions, tokenizer: Any) -> tuple[list[str], str]:
    if options.sample is not None:
        sample = options.sample
        if sample.suffix == ".txt":
            texts = [line for line in sample.read_text().splitlines() if line.strip()]
        elif sample.suffix == ".json":
            texts = json.loads(sample.read_text())
            if not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
                raise InvalidInput(f"{sample.name}: a text model's JSON sample is a list of strings")
        else:
            raise InvalidInput(f"{sample.name}: a text model's sample is a .txt file (a text per line) or a JSON list")
        if not texts:
            raise InvalidInput(f"{sample.name}: the sample has no texts")
        return texts, sample.name
    vocabulary = [w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 2]
    if not vocabulary:
        raise InvalidInput("the tokenizer has no plain words to make sentences of: pass --sample texts.txt")
    random = np.random.default_rng(20261205)
    lengths = random.integers(1, 60, GENERATED_TEXTS)
    return [" ".join(random.choice(sorted(vocabulary), n)) for n in lengths], "generated sentences"


def convert(path: Path, out: Path, name: str, options: ConvertOptions) -> Conversion:
    """Convert the transformers folder PATH into the folder OUT (created), through the gate."""
    from conveyor.serving.model import TextClassifier, softmax
    from conveyor.serving.runtime import RuntimeOptions

    computes_in_float32(options, "a transformers model")
    torch = require("torch", extra="huggingface", for_="converting this model")
    transformers = require("transformers", extra="huggingface", for_="converting this model")
    require("onnxscript", extra="huggingface", for_="converting this model")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if not (path / "tokenizer.json").is_file():
        raise InvalidInput(
            f"{path.name} has no tokenizer.json: save a fast tokenizer beside the model "
            "(AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(folder))"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False
            ).eval()
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput(
            f"{path.name}: not a transformers sequence classifier ({str(exc).splitlines()[0]})"
        ) from None
    labels = _labels(model.config, options)
    max_length = int(min(getattr(model.config, "max_position_embeddings", 512) or 512, 512))
    example = tokenizer(["a first example sentence", "and a second"], padding=True, return_tensors="pt")
    inputs = {k: example[k] for k in NAMES if k in example and k in _accepted(model)}
    spec = ModelSpec(
        name=name,
        task="text-classification",
        labels=labels,
        positive_label=options.positive_label,
        max_length=max_length,
        source=Source(framework="transformers", framework_version=version_of("transformers"),
                      file=kept_original(path), converter=f"torch.onnx {version_of('torch')} (dynamo)"),
    )  # fmt: skip
    texts, origin = _texts(options, tokenizer)
    # everything the user can get wrong is checked above: from here on, OUT is written and, if refused, removed
    out.mkdir(parents=True, exist_ok=True)
    quiet_exporter()
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.onnx.export(
                model, (), kwargs=inputs, dynamo=True, input_names=list(inputs), output_names=["logits"],
                dynamic_shapes={k: {0: batch, 1: sequence} for k in inputs}, verbose=False,
            )  # fmt: skip
            exported.save(str(out / "model.onnx"))
    except Exception as exc:  # the exporter raises many kinds
        shutil.rmtree(out, ignore_errors=True)
        raise InvalidInput(f"{path.name}: torch.onnx could not export it: {str(exc).splitlines()[0]}") from None
    shutil.copy2(path / "tokenizer.json", out / "tokenizer.json")
    served = TextClassifier(
        ResolvedModel(spec=spec, model_path=out / "model.onnx", tokenizer_path=out / "tokenizer.json"),
        RuntimeOptions(),
    )
    converted = softmax(served.classify(texts).astype(np.float64))
    reference = np.concatenate(
        [_reference(model, tokenizer, texts[i : i + 16], max_length, inputs) for i in range(0, len(texts), 16)]
    )
    report = check_conversion("text-classification", reference, converted, origin, options.agreement, options.tolerance)
    if not report.passed:
        shutil.rmtree(out, ignore_errors=True)
        raise ConversionRefused(refusal(report, [repr(t[:60]) for t in texts], reference, converted, labels))
    write_folder(out, spec, path)
    return Conversion(spec=spec, report=report, folder=out)


def _accepted(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _reference(model: Any, tokenizer: Any, texts: list[str], max_length: int, inputs: dict[str, Any]) -> np.ndarray:
    import torch

    encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        logits = model(**{k: encoded[k] for k in inputs}).logits
    return torch.softmax(logits.double(), dim=1).numpy()
