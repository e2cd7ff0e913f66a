"""The model spec: what a model directory holds and how to serve it.

A model directory has ``model.yaml`` (this spec), the ONNX file and, for text
models, a ``tokenizer.json`` from the Hugging Face ``tokenizers`` library::

    name: sentiment
    version: "1"
    task: text-classification
    model_file: model.onnx
    tokenizer_file: tokenizer.json
    labels: [negative, positive]
    positive_label: positive
    max_length: 128
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from conveyor.errors import ModelLoadError
from conveyor.task_kinds import Task

SPEC_FILE = "model.yaml"
GGUF_SUFFIX = ".gguf"  # llama.cpp's single-file format: a text-generation model, weights and tokenizer
ORIGINAL_FOLDER = "original"  # a converted version keeps the framework's own file here; never served, never in an image
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


FeatureType = Literal["number", "integer", "string", "boolean"]


class Feature(BaseModel):
    """One named, typed column of a tabular model's input: the schema requests are checked against."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: FeatureType = "number"
    values: list[str] | None = Field(default=None, description="For a string feature: the categories seen in training.")
    unseen: Literal["accept", "refuse"] = Field(
        default="accept",
        description="A string feature: whether the model takes a value other than `values` (refuse: the model fails "
        "on one, an encoder with handle_unknown='error'; a request with one is a 422 naming the column and the value).",
    )
    missing: bool = Field(
        default=False,
        description="Whether a value may be missing (null in JSON, NaN): true where the original model answered "
        "rows with this column missing at registration (an imputer; XGBoost and LightGBM natively).",
    )
    missing_as: str | None = Field(
        default=None,
        description="A string feature that may be missing: the string the graph takes for a missing value "
        "(the imputer's missing_values).",
    )

    @model_validator(mode="after")
    def _missing_marker(self) -> Feature:
        if self.missing_as is not None and self.type != "string":
            raise ValueError(f"feature {self.name!r}: missing_as is for a string feature (a number is missing as NaN)")
        if self.missing and self.type == "string" and self.missing_as is None:
            raise ValueError(f"feature {self.name!r}: a string feature that may be missing needs missing_as")
        return self


class ImageInput(BaseModel):
    """How an image-classification model takes its pixels: the size it was trained on and the
    normalisation, applied as ``(pixel * scale - mean) / std`` per channel."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)
    channels: Literal[1, 3] = Field(default=3, description="1: grayscale, 3: RGB")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    scale: float = Field(default=1 / 255, gt=0, description="Pixels (0-255) are multiplied by this first.")
    mean: list[float] = Field(default_factory=lambda: [0.0], description="One value, or one per channel.")
    std: list[float] = Field(default_factory=lambda: [1.0], description="One value, or one per channel.")
    softmax: bool = Field(default=True, description="The graph answers logits (true) or probabilities (false).")
    top_k: int = Field(default=5, ge=1, description="How many labels /predict answers, best first.")

    @model_validator(mode="after")
    def _per_channel(self) -> ImageInput:
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                wanted = "1 value" if self.channels == 1 else f"1 or {self.channels} values"
                raise ValueError(f"image.{name} needs {wanted} (one per channel), got {values}")
        if any(v <= 0 for v in self.std):
            raise ValueError(f"image.std must be positive, got {self.std}")
        return self


class Source(BaseModel):
    """Where a converted model came from: the framework, its version, the original file kept beside the ONNX."""

    model_config = ConfigDict(extra="forbid")

    framework: str
    framework_version: str
    file: str
    converter: str = ""


class GgufFacts(BaseModel):
    """What a GGUF file says of itself, read at registration (``conveyor.generative.gguf_facts``)."""

    model_config = ConfigDict(extra="forbid")

    architecture: str
    context_length: int | None = None
    quantisation: str | None = None
    chat_template: str | None = Field(default=None, description="The Jinja chat template the file carries.")
    model_name: str | None = None


class ModelSpec(BaseModel):
    """How to serve one model version."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str = "1"
    task: Task = Task.TEXT_CLASSIFICATION
    model_file: str = "model.onnx"
    tokenizer_file: str | None = "tokenizer.json"
    labels: list[str] = Field(default_factory=lambda: ["negative", "positive"])
    features: list[Feature] = Field(
        default_factory=list, description="Tabular tasks: the input columns, in the order the model takes them."
    )
    image: ImageInput | None = Field(default=None, description="image-classification: the pixels the model takes.")
    source: Source | None = None
    gguf: GgufFacts | None = Field(default=None, description="text-generation: the GGUF file's own metadata.")
    positive_label: str | None = Field(
        default=None,
        description="For two labels: the label answered as a boolean by /predict, "
        "e.g. {'positive': true}. Defaults to 'positive' if present, else the second label.",
    )
    max_length: int = Field(default=128, ge=2, le=8192, description="Longer texts are truncated to this.")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"model name {value!r} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _enough_labels(cls, value: list[str], info: ValidationInfo) -> list[str]:
        task = info.data.get("task", Task.TEXT_CLASSIFICATION)
        if not (task.regression or task.openai_api) and len(value) < 2:
            raise ValueError(f"a {task} model needs at least 2 labels, got {value}")
        return value

    @field_validator("version")
    @classmethod
    def _valid_version(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"model version {value!r} must be letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _check_labels(self) -> ModelSpec:
        if self.task.regression or self.task.openai_api:
            self.labels = []
        if self.task.generates:
            self.tokenizer_file = None  # the GGUF file carries its tokenizer
        if self.task.tabular:
            self.tokenizer_file = None
            if not self.features:
                raise ValueError(f"a {self.task} model needs its features (name and type of each input column)")
            names = [f.name for f in self.features]
            if len(set(names)) != len(names):
                raise ValueError(f"feature names must be unique, got {names}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {self.labels}")
        if self.positive_label is not None and self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} is not one of the labels {self.labels}")
        if self.task.takes_images:
            self.tokenizer_file = None
            if self.image is None:
                raise ValueError("an image-classification model needs image: {width, height, channels, ...}")
        if self.task.tokenized and not self.tokenizer_file:
            raise ValueError(f"a {self.task} model needs tokenizer_file")
        return self

    @property
    def tabular(self) -> bool:
        return self.task.tabular

    @property
    def boolean_label(self) -> str | None:
        """The label /predict answers as ``{label: bool}``; None for more than two labels.

        Other classifiers (tabular, image) answer a boolean only where ``positive_label`` is
        named: their labels are whatever the training data held."""
        if len(self.labels) != 2:
            return None
        if not self.task.takes_text and not self.positive_label:
            return None
        if self.positive_label:
            return self.positive_label
        return "positive" if "positive" in self.labels else self.labels[1]


class ResolvedModel(BaseModel):
    """A spec plus the absolute paths of its files."""

    spec: ModelSpec
    model_path: Path
    tokenizer_path: Path | None


def load_spec_file(path: Path) -> ModelSpec:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path}: expected a mapping of spec fields")
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in exc.errors())
        raise ModelLoadError(f"{path}: {problems}") from exc


def resolve_model(
    location: str | Path,
    tokenizer: str | Path | None = None,
    name: str | None = None,
    version: str | None = None,
    labels: list[str] | None = None,
    spec_file: str | Path | None = None,
) -> ResolvedModel:
    """Resolve a model directory or a bare ``.onnx`` file to a spec and file paths.

    A bare ONNX file with ``tokenizer`` serves as a text classifier; without
    one, it serves raw tensors over the v2 protocol only.  ``spec_file`` is a
    ``model.yaml`` kept outside the directory (an image's inferred spec), its
    file names relative to the directory.
    """
    path = Path(location).expanduser()
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model directory or ONNX file")

    overrides: dict[str, object] = {}
    if name:
        overrides["name"] = name
    if version:
        overrides["version"] = version
    if labels:
        overrides["labels"] = labels

    if path.is_dir():
        spec_path = Path(spec_file) if spec_file else path / SPEC_FILE
        if not spec_path.exists() and spec_file is None:
            # the rule register and build follow too: one .onnx file, tokenizer.json beside it
            location, found_tokenizer = locate_model(path)
            return resolve_model(
                location, tokenizer or found_tokenizer, name or _name_from_stem(path.resolve().name), version, labels
            )
        if not spec_path.exists():
            raise ModelLoadError(f"{spec_path}: no such spec file")
        spec = load_spec_file(spec_path)
        if tokenizer:
            overrides["tokenizer_file"] = str(Path(tokenizer).resolve())
        if overrides:
            spec = _with_overrides(spec, overrides)
        model_path = path / spec.model_file
        tokenizer_path = path / spec.tokenizer_file if spec.tokenizer_file else None
    else:
        if path.suffix not in (".onnx", GGUF_SUFFIX):
            raise ModelLoadError(f"{path}: expected a model directory, an .onnx file or a .gguf file")
        task = Task.TEXT_CLASSIFICATION if tokenizer else Task.TENSOR
        fields: dict[str, object] = {
            "name": _name_from_stem(path.stem),
            "model_file": path.name,
            "task": Task.TEXT_GENERATION if path.suffix == GGUF_SUFFIX else task,
            "tokenizer_file": str(Path(tokenizer).resolve()) if tokenizer else None,
        }
        fields.update(overrides)
        try:
            spec = ModelSpec.model_validate(fields)
        except ValidationError as exc:
            raise ModelLoadError(f"{path}: {exc.errors()[0]['msg']}") from exc
        model_path = path
        tokenizer_path = Path(tokenizer) if tokenizer else None

    if not model_path.is_file():
        raise ModelLoadError(f"{model_path}: {'GGUF' if spec.task.generates else 'ONNX'} model file not found")
    if spec.task.tokenized:
        if tokenizer_path is None or not tokenizer_path.is_file():
            raise ModelLoadError(f"{tokenizer_path}: tokenizer file not found")
    else:
        tokenizer_path = None
    return ResolvedModel(spec=spec, model_path=model_path.resolve(), tokenizer_path=tokenizer_path)


def locate_model(folder: Path) -> tuple[Path, Path | None]:
    """What serves a model folder (a registered version's files): the folder itself when it has a
    ``model.yaml``, else its one ``.onnx`` file with the ``tokenizer.json`` beside it, if any.

    The one rule for ``conveyor serve REF`` and ``conveyor build REF`` alike."""
    if (folder / SPEC_FILE).is_file():
        return folder, None
    onnx_files = sorted(folder.rglob("*.onnx"))
    if len(onnx_files) != 1:
        raise ModelLoadError(
            f"{folder} has no {SPEC_FILE} and {len(onnx_files)} .onnx files: register a folder with a "
            f"{SPEC_FILE}, or exactly one .onnx file (with tokenizer.json beside it for text)"
        )
    tokenizer = onnx_files[0].parent / "tokenizer.json"
    return onnx_files[0], tokenizer if tokenizer.is_file() else None


def inferred_spec(folder: Path, name: str, version: str) -> ModelSpec:
    """The spec a model folder is served with, file names relative to the folder."""
    location, tokenizer = locate_model(folder)
    spec = resolve_model(location, tokenizer, name, version).spec
    if location == folder:
        return spec
    return spec.model_copy(
        update={
            "model_file": location.relative_to(folder).as_posix(),
            "tokenizer_file": tokenizer.relative_to(folder).as_posix() if tokenizer else None,
        }
    )


def _with_overrides(spec: ModelSpec, overrides: dict[str, object]) -> ModelSpec:
    try:
        return ModelSpec.model_validate({**spec.model_dump(), **overrides})
    except ValidationError as exc:
        raise ModelLoadError(exc.errors()[0]["msg"]) from exc


def _name_from_stem(stem: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", stem).strip("-._") or "model"
    return cleaned[:128]
