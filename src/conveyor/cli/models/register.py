"""``conveyor models register``: a model folder, file or framework model into a gated new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.models.common import JsonOption, RegistryOption, TokenOption, _metrics, _pairs
from conveyor.cli.output import ProgressBar, handle_errors, print_json, stderr, stdout
from conveyor.errors import InvalidInput
from conveyor.registry.config import open_registry
from conveyor.sizes import human_size


def register(
    path: Annotated[Path, typer.Argument(help="A model folder or file.", exists=True)],
    name: Annotated[str, typer.Option("--name", "-n", help="Registered model name.")],
    description: Annotated[str, typer.Option(help="What this version is.")] = "",
    model_description: Annotated[str | None, typer.Option(help="Set the model's own description.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Mutable tag key=value (repeatable).")] = None,
    prop: Annotated[
        list[str] | None, typer.Option("--property", help="Property key=value, fixed at registration.")
    ] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Point this alias at the new version (repeatable).")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="Lineage metric key=number (repeatable).")] = None,
    run_id: Annotated[str | None, typer.Option(help="The pipeline run that produced it.")] = None,
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
            "generated from what the model records].",
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
    min_agreement: Annotated[
        float, typer.Option(help="Gate: the share of rows whose label must agree (classifiers).", min=0, max=1)
    ] = 0.999,
    tolerance: Annotated[
        float,
        typer.Option(help="Gate: the largest difference of a probability, or of a value (relative above 1).", min=0),
    ] = 1e-4,
    positive_label: Annotated[
        str | None,
        typer.Option(help="A binary classifier's label /predict answers as {LABEL: true|false}."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Rows the model was judged on (CSV, JSON, JSON Lines, or text lines): scored here, their "
            "profile is kept as monitoring/profile.json, the baseline `conveyor monitor` compares traffic with.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
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
    only files you trust.  See docs/models.md."""
    with handle_errors():
        reg = open_registry(registry, token)
        import tempfile

        from conveyor.convert import is_framework_model
        from conveyor.registry.records import Lineage
        from conveyor.serving.intake import check_servable

        metrics = _metrics(metric)
        properties = _pairs(prop, "--property")
        scratch = None
        original_path = path
        if is_framework_model(path):
            from conveyor.convert import convert_model

            scratch = tempfile.TemporaryDirectory(prefix="conveyor-convert-")
            options = _convert_options(
                sample, min_agreement, tolerance, positive_label, labels, input_shape, task, mean, std
            )
            conversion = convert_model(path, Path(scratch.name) / "model", name, options)
            source = conversion.spec.source
            assert source is not None
            stderr.print(
                f"converted {path.name} ({source.framework} {source.framework_version}, {source.converter}) to "
                f"ONNX: {_inputs_of(conversion.spec)}; gate passed: {conversion.report.summary()}"
            )
            metrics = {**conversion.report.metrics(), **metrics}
            properties = {"converter": source.converter, **properties}
            path = conversion.folder
        elif sample is not None or labels or input_shape or task:
            raise InvalidInput(
                "--sample, --labels, --input-shape and --task are for a trained model (joblib, pickle, XGBoost, "
                "LightGBM, PyTorch, a transformers folder) only"
            )
        lineage = Lineage(run_id=run_id, metrics=metrics)
        if scratch is not None:
            from conveyor.registry.base import git_commit

            where = original_path.resolve()
            lineage = lineage.model_copy(update={"source": str(where), "git_commit": git_commit(where.parent)})
        extra = []
        profile_dir = tempfile.TemporaryDirectory(prefix="conveyor-profile-") if reference is not None else None
        if reference is not None and profile_dir is not None:
            extra.append(_reference_profile(path, reference, Path(profile_dir.name) / "profile.json"))
        with ProgressBar(enabled=not as_json) as bar:
            version = reg.register(
                path,
                name,
                description=description,
                tags=_pairs(tag, "--tag"),
                properties=properties,
                aliases=alias or [],
                lineage=lineage,
                model_description=model_description,
                progress=bar,
                skip_unchanged=skip_unchanged,
                check=check_servable if check else None,
                extra_files=extra,
            )
        for folder in (scratch, profile_dir):
            if folder is not None:
                folder.cleanup()
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


def _reference_profile(model: Path, reference: Path, out: Path) -> tuple[str, Path]:
    """The reference rows scored by the served model's code, profiled: the version's baseline."""
    from conveyor.monitoring.observe import Observer
    from conveyor.monitoring.profile import PROFILE_FILE, profile_of
    from conveyor.serving.spec import resolve_model

    observer = Observer(resolve_model(model))
    profile = profile_of(observer.reference_columns(reference), source=reference.name)
    profile.save(out)
    stderr.print(f"reference profile: {profile.items} items of {reference.name}, {len(profile.columns)} columns")
    return PROFILE_FILE, out


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
) -> Any:
    from conveyor.convert import ConvertOptions

    if task not in (None, "image-classification", "tensor"):
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
        input_shape=shape, task=task, mean=_numbers(mean, "--mean"), std=_numbers(std, "--std"),
    )  # fmt: skip


def _inputs_of(spec: Any) -> str:
    if spec.tabular:
        return f"{spec.task}, {len(spec.features)} features"
    if spec.image is not None:
        image = spec.image
        return f"{spec.task}, {image.channels}x{image.height}x{image.width} images, {len(spec.labels)} labels"
    if spec.task == "text-classification":
        return f"{spec.task}, labels {spec.labels}"
    return spec.task
