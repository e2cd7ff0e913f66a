"""``conveyor models register``: a model folder, file or framework model into a gated new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.models.common import (
    JsonOption,
    MinAgreementOption,
    PositiveLabelOption,
    PrecisionOption,
    ReferenceOption,
    RegistryOption,
    TokenOption,
    ToleranceOption,
    _metrics,
    _pairs,
)
from conveyor.cli.output import EXIT_USAGE, ProgressBar, fail, handle_errors, print_json, stderr, stdout
from conveyor.errors import InvalidInput
from conveyor.precision import Precision
from conveyor.registration import register_path
from conveyor.registry.config import open_registry
from conveyor.registry.storage_errors import NOTHING_REGISTERED, outcome
from conveyor.sizes import human_size
from conveyor.task_kinds import Task


def register(
    path: Annotated[Path | None, typer.Argument(help="A model folder or file (none with --from).", exists=True)] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Registered model name [default with --from: its model's].")
    ] = None,
    from_version: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="A generative version (name:N, name@alias) whose weights the new version reuses by digest, with "
            "--generation-config as its new prompt and sampling (nothing is copied or downloaded).",
        ),
    ] = None,
    generation_config: Annotated[
        Path | None,
        typer.Option(
            help="A .gguf model's generation config (YAML: system_prompt, chat_template, temperature, top_p, top_k, "
            "repeat_penalty, max_tokens, stop, seed) [default: the engine's defaults].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    model_description: Annotated[str | None, typer.Option(help="Set the model's own description.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Mutable tag key=value (repeatable).")] = None,
    prop: Annotated[
        list[str] | None, typer.Option("--property", help="Property key=value, fixed at registration.")
    ] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Point this alias at the new version (repeatable).")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="Lineage metric key=number (repeatable).")] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_RUN_ID",
            help="The pipeline run that produced it [default: the run a pipeline step runs in].",
        ),
    ] = None,
    skip_unchanged: Annotated[
        bool,
        typer.Option(
            help="Register nothing if the files equal an existing version's (the newest such; aliases move to it)."
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            help="Refuse files that cannot be served: a model.yaml that does not hold, no .onnx file or one that "
            "does not parse, a broken tokenizer.json (--no-check stores any files)."
        ),
    ] = True,
    sample: Annotated[
        Path | None,
        typer.Option(
            help="A trained model only: what both models answer in the conversion gate. Tabular: rows (.csv "
            "with a header, or .json records) whose columns also name and type the features; PyTorch: a .npy "
            "array of inputs; transformers: texts (.txt, one per line, or a .json list) [default: inputs "
            "generated from what the model records].  Without --reference, its rows or texts are also kept as the "
            "sample a canary's expected agreement is measured on.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="A trained classifier: names of its classes 0..K-1, comma-separated [default: its own]."),
    ] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="A TorchScript file: one input's shape without the batch axis, e.g. 3,224,224.")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="A PyTorch model: image-classification or tensor [default: image-classification for an input "
            "of [N, 1 or 3, H, W]]."
        ),
    ] = None,
    mean: Annotated[
        str, typer.Option(help="An image model: the normalisation's mean, one value or one per channel.")
    ] = "0",
    std: Annotated[
        str, typer.Option(help="An image model: the normalisation's std (pixels are scaled to 0-1 first).")
    ] = "1",
    min_agreement: MinAgreementOption = 0.999,
    tolerance: ToleranceOption = 1e-4,
    precision: PrecisionOption = Precision.AUTO,
    positive_label: PositiveLabelOption = None,
    reference: ReferenceOption = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register PATH as the next version of NAME: every file stored by sha256, then the version made visible.

    PATH is a model folder, an .onnx file, or a trained model: a scikit-learn estimator or
    Pipeline (.joblib, .pkl), an XGBoost (.json, .ubj) or LightGBM (.txt) model, a PyTorch
    TorchScript (.pt) or torch.export (.pt2) file, or a Hugging Face transformers folder.  A trained
    model is converted to ONNX and registered only if both answer the same rows alike (the
    gate); the original file is kept in the version.  Loading a pickle runs its code: register
    only files you trust.  A .gguf file is a generative model (task text-generation), served
    OpenAI-compatible; --from with --generation-config makes a new prompt of one a new version.  See
    docs/models.md and docs/generative.md."""
    if from_version is not None:
        _register_generation_config(from_version, path, name, generation_config, description, alias, run_id,
                                    registry, token, as_json)  # fmt: skip
        return
    if path is None or name is None:
        raise fail("a model file or folder and --name (or --from REF --generation-config FILE)", EXIT_USAGE)
    with handle_errors(), outcome(NOTHING_REGISTERED):  # the registry may fail as it opens
        reg = open_registry(registry, token)
        options = _convert_options(
            sample, min_agreement, tolerance, positive_label, labels, input_shape, task, mean, std, precision
        )
        given = [flag for flag, value in (("--sample", sample), ("--labels", labels), ("--input-shape", input_shape),
                 ("--task", task), ("--precision", precision != Precision.AUTO)) if value]  # fmt: skip
        version = register_path(
            reg, path, name, options, conversion_flags=given, description=description,
            model_description=model_description, tags=_pairs(tag, "--tag"), properties=_pairs(prop, "--property"),
            aliases=alias or [], metrics=_metrics(metric), run_id=run_id, skip_unchanged=skip_unchanged,
            check=check, reference=reference, generation_config=generation_config, report=_report,
            progress=lambda: ProgressBar(enabled=not as_json),
        )  # fmt: skip
    show_registered(version, as_json)


def _register_generation_config(
    base: str, path: Path | None, name: str | None, config: Path | None, description: str,
    alias: list[str] | None, run_id: str | None, registry: str | None, token: str | None, as_json: bool,
) -> None:  # fmt: skip
    import tempfile

    from conveyor.generative.registration import register_generation_config

    if path is not None or config is None:
        raise fail("--from REF takes --generation-config FILE and no model file", EXIT_USAGE)
    with handle_errors(), outcome(NOTHING_REGISTERED), tempfile.TemporaryDirectory(prefix="conveyor-gen-") as scratch:
        version = register_generation_config(
            open_registry(registry, token), base, config, Path(scratch), name=name, description=description,
            aliases=alias or [], run_id=run_id,
        )  # fmt: skip
    show_registered(version, as_json)


def _report(text: str) -> None:
    stderr.print(text, highlight=False)


def show_registered(version: Any, as_json: bool) -> None:
    if as_json:
        print_json(version)
        return
    aliases = " ".join(f"@{a}" for a in version.aliases)
    if version.unchanged:
        stdout.print(f"unchanged: [bold]{version.ref}[/bold] {aliases} already holds these files")
        return
    stdout.print(
        f"registered [bold]{version.ref}[/bold] {aliases} sha256:{version.digest} ({human_size(version.size)})"
    )


def _numbers(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def _convert_options(
    sample: Path | None,
    agreement: float,
    tolerance: float,
    positive_label: str | None,
    labels: str | None,
    input_shape: str | None,
    task: str | None,
    mean: str,
    std: str,
    precision: Precision = Precision.AUTO,
) -> Any:
    from conveyor.convert import ConvertOptions

    if task not in (None, Task.IMAGE_CLASSIFICATION, Task.TENSOR):
        raise InvalidInput(f"--task: image-classification or tensor, got {task!r}")
    shape = None
    if input_shape:
        dims = _numbers(input_shape, "--input-shape")
        if not dims or any(d < 1 or not d.is_integer() for d in dims):
            raise InvalidInput(f"--input-shape: positive whole numbers, e.g. 3,224,224, got {input_shape!r}")
        shape = tuple(int(d) for d in dims)
    names = [n.strip() for n in labels.split(",")] if labels else None
    if names is not None and (len(names) < 2 or "" in names or len(set(names)) != len(names)):
        raise InvalidInput(f"--labels: at least 2 different names, comma-separated, got {labels!r}")
    return ConvertOptions(
        sample=sample, agreement=agreement, tolerance=tolerance, positive_label=positive_label, labels=names,
        input_shape=shape, task=task, mean=_numbers(mean, "--mean"), std=_numbers(std, "--std"), precision=precision,
    )  # fmt: skip
