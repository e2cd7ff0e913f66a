"""``conveyor models``: register, list, show, download, alias, tag, archive and delete model versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from conveyor.registry.records import ModelVersion

from conveyor.cli.output import ProgressBar, fail, handle_errors, new_table, print_json, stderr, stdout
from conveyor.cli.trust import RequireSignedOption, TrustedKeyOption, trust_from_options
from conveyor.errors import InvalidInput
from conveyor.optimize import DEFAULT_MIN_AGREEMENT
from conveyor.registry.config import open_registry
from conveyor.registry.refs import parse_ref
from conveyor.sizes import human_size

app = typer.Typer(
    rich_markup_mode=None,
    help="Model versions in the registry (CONVEYOR_REGISTRY, CONVEYOR_TOKEN).",
    no_args_is_help=True,
)
alias_app = typer.Typer(
    rich_markup_mode=None, help="Point aliases like name@production at versions.", no_args_is_help=True
)
app.add_typer(alias_app, name="alias")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", envvar="CONVEYOR_REGISTRY", help="Registry: http(s) URL, database URL or folder."),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="CONVEYOR_TOKEN", help="Bearer token.", show_default=False)
]


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"{what} {item!r} must look like key=value")
        result[key] = value
    return result


def _metrics(values: list[str] | None) -> dict[str, float]:
    result = {}
    for key, value in _pairs(values, "--metric").items():
        try:
            result[key] = float(value)
        except ValueError:
            raise fail(f"--metric {key}={value}: the value must be a number") from None
    return result


def _version_table(versions: list[ModelVersion], title: str) -> Table:
    table = new_table(title)
    for column in ("version", "status", "aliases", "digest", "size", "framework", "created", "tags"):
        table.add_column(column, justify="right" if column in ("version", "size") else "left")
    for v in versions:
        table.add_row(
            str(v.version),
            v.status,
            " ".join(f"@{a}" for a in v.aliases),
            v.digest[:12],
            human_size(v.size),
            " ".join(filter(None, [v.framework, v.framework_version])),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            " ".join(f"{k}={val}" for k, val in v.tags.items()),
        )
    return table


def _approval(decision: dict[str, str | bool]) -> str:
    """One approval of the run that registered a version: who, which step, when and why."""
    who = decision.get("by") or "someone"
    when = str(decision.get("at") or "")[:19].replace("T", " ")
    reason = decision.get("reason")
    return (
        f"by {who} at step {decision.get('step', '?')}"
        + (f" ({when})" if when else "")
        + (f': "{reason}"' if reason else "")
    )


def _show_version(v: ModelVersion) -> None:
    stdout.print(f"[bold]{v.ref}[/bold]  {v.status}  digest sha256:{v.digest}")
    if v.description:
        stdout.print(v.description)
    rows = [
        ("aliases", " ".join(f"@{a}" for a in v.aliases) or "-"),
        ("framework", " ".join(filter(None, [v.framework, v.framework_version])) or "-"),
        ("size", human_size(v.size)),
        ("created", v.created_at.isoformat()),
        ("tags", ", ".join(f"{k}={val}" for k, val in v.tags.items()) or "-"),
        ("properties", ", ".join(f"{k}={val}" for k, val in v.properties.items()) or "-"),
        ("source", v.lineage.source or "-"),
        ("git commit", v.lineage.git_commit or "-"),
        ("run", v.lineage.run_id or "-"),
        ("metrics", ", ".join(f"{k}={val:g}" for k, val in v.lineage.metrics.items()) or "-"),
        ("optimized", v.lineage.optimized_from and f"from {v.lineage.optimized_from}"),
        *(("approved", _approval(a)) for a in v.lineage.approvals),
    ]
    for key, value in rows:
        if value:
            stdout.print(f"  {key:<11} {value}", highlight=False)
    files = new_table("files")
    files.add_column("path")
    files.add_column("sha256")
    files.add_column("size", justify="right")
    for f in v.files:
        files.add_row(f.path, f.sha256, human_size(f.size))
    stdout.print(files)


@app.command("register")
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
            )
        if scratch is not None:
            scratch.cleanup()
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


@app.command("list")
def list_models(registry: RegistryOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """List registered models."""
    with handle_errors():
        models = open_registry(registry, token).list_models()
    if as_json:
        print_json([m.model_dump(mode="json") for m in models])
        return
    table = new_table("models")
    for column in ("name", "latest", "versions", "aliases", "updated", "description"):
        table.add_column(column)
    for m in models:
        table.add_row(
            m.name,
            str(m.latest_version or "-"),
            str(m.version_count),
            " ".join(f"@{a.name}->{a.version}" + (" (protected)" if a.protected else "") for a in m.aliases),
            m.updated_at.strftime("%Y-%m-%d %H:%M"),
            m.description,
        )
    stdout.print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="name (the model and its versions), name:version or name@alias.")],
    all_versions: Annotated[bool, typer.Option("--all", help="Include archived versions.")] = False,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a model with its versions, or one version with its files and lineage."""
    with handle_errors():
        reg = open_registry(registry, token)
        parsed = parse_ref(ref)
        if parsed.version is None and parsed.alias is None:
            model = reg.get_model(parsed.name)
            versions = reg.list_versions(parsed.name, include_archived=all_versions)
            if as_json:
                print_json({**model.model_dump(mode="json"), "versions": [v.model_dump(mode="json") for v in versions]})
                return
            stdout.print(f"[bold]{model.name}[/bold]  {model.description}")
            if model.tags:
                stdout.print("tags: " + ", ".join(f"{k}={v}" for k, v in model.tags.items()))
            stdout.print(_version_table(versions, f"versions of {model.name}"))
            return
        version = reg.resolve(parsed)
    if as_json:
        print_json(version)
    else:
        _show_version(version)


@app.command("download")
def download(
    ref: Annotated[str, typer.Argument(help="name, name:version or name@alias.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the files into.")],
    require_signed: RequireSignedOption = False,
    trusted_key: TrustedKeyOption = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a version's files into a folder; every file is checked against its sha256.

    A signed version's signature lands beside them as .conveyor-signature.json; with
    --require-signed nothing is written unless a trusted key signed exactly these files."""
    from conveyor.supply_chain.model_signature import download_signed

    with handle_errors(), ProgressBar(enabled=not as_json) as bar:
        trusted, offered = trust_from_options(require_signed, trusted_key)
        version, signed, key = download_signed(
            open_registry(registry, token), ref, out, trusted, progress=bar, offered=offered
        )
    if as_json:
        print_json(
            {"version": version.model_dump(mode="json"), "path": str(out.resolve()), "signed": signed, "signed_by": key}
        )
    else:
        note = f", signed by key {key[:12]}" if key else (", signature included" if signed else "")
        stdout.print(f"downloaded [bold]{version.ref}[/bold] to {out} ({len(version.files)} files, verified{note})")


@app.command("sign")
def sign(
    ref: Annotated[str, typer.Argument(help="name, name:version or name@alias.")],
    key: Annotated[
        Path | None,
        typer.Option(help="Private key (conveyor keys generate) [default: the PEM in $CONVEYOR_SIGNING_KEY]."),
    ] = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign a version's files (OpenSSF model signing); the signature is stored with the version."""
    from conveyor.supply_chain.keys import load_signing_key
    from conveyor.supply_chain.model_signature import sign_version

    with handle_errors():
        signed = sign_version(open_registry(registry, token), ref, load_signing_key(key))
    if as_json:
        print_json({"ref": signed.ref, "key_id": signed.key_id, "signature": f"sha256:{signed.blob}"})
    else:
        stdout.print(f"signed [bold]{signed.ref}[/bold] with key {signed.key_id[:12]}")


@app.command("verify-signature")
def verify_signature(
    ref: Annotated[str, typer.Argument(help="name, name:version or name@alias.")],
    trusted_key: TrustedKeyOption = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check that a trusted key signed exactly the files the registry stores for a version. Exit 1 when not.

    Every stored file is read and hashed again (not a cached copy): a byte changed in the
    registry's storage since signing is refused, naming the file."""
    from conveyor.supply_chain.keys import require_trusted_keys
    from conveyor.supply_chain.model_signature import verify_stored

    with handle_errors(), ProgressBar(enabled=not as_json) as bar:
        trusted = require_trusted_keys(trusted_key)
        version, key_id = verify_stored(open_registry(registry, token), ref, trusted, progress=bar)
    if as_json:
        print_json({"ref": version.ref, "verified": True, "signed_by": key_id})
    else:
        stdout.print(f"[green]ok[/green] {version.ref} is signed by trusted key {key_id[:12]}")


def _name_alias(text: str) -> tuple[str, str]:
    ref = parse_ref(text)
    if ref.alias is None:
        raise InvalidInput(f"expected NAME@ALIAS, got {text!r}")
    return ref.name, ref.alias


@alias_app.command("set")
def alias_set(
    target: Annotated[str, typer.Argument(help="NAME@ALIAS, e.g. sentiment@production.")],
    version: Annotated[int, typer.Argument(help="The version the alias points at.", min=1)],
    force: Annotated[bool, typer.Option(help="Move a protected alias.")] = False,
    protect: Annotated[bool | None, typer.Option("--protect/--unprotect", help="Protect the alias.")] = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point NAME@ALIAS at VERSION (creating the alias if needed)."""
    with handle_errors():
        name, alias = _name_alias(target)
        result = open_registry(registry, token).set_alias(name, alias, version, force=force, protect=protect)
    if as_json:
        print_json(result)
    else:
        note = " (protected)" if result.protected else ""
        stdout.print(f"{name}@{alias} -> {name}:{result.version}{note}")


@alias_app.command("delete")
def alias_delete(
    target: Annotated[str, typer.Argument(help="NAME@ALIAS")],
    force: Annotated[bool, typer.Option(help="Delete a protected alias.")] = False,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete an alias."""
    with handle_errors():
        name, alias = _name_alias(target)
        version = open_registry(registry, token).delete_alias(name, alias, force=force)
    if as_json:
        print_json({"name": name, "alias": alias, "version": version})
    else:
        stdout.print(f"deleted {name}@{alias} (was {name}:{version})")


@app.command("tag")
def tag(
    ref: Annotated[str, typer.Argument(help="NAME (the model) or NAME:VERSION.")],
    tags: Annotated[list[str] | None, typer.Argument(help="key=value pairs to set.")] = None,
    unset: Annotated[list[str] | None, typer.Option(help="Tag keys to remove (repeatable).")] = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set or remove tags of a model or a version."""
    with handle_errors():
        parsed = parse_ref(ref)
        if parsed.alias is not None:
            raise InvalidInput("tag a model (NAME) or a version (NAME:VERSION), not an alias")
        result = open_registry(registry, token).set_tags(parsed.name, parsed.version, _pairs(tags, "tag"), unset or [])
    if as_json:
        print_json({"ref": ref, "tags": result})
    else:
        stdout.print(f"{ref}: " + (", ".join(f"{k}={v}" for k, v in result.items()) or "no tags"))


def _exact(ref: str) -> tuple[str, int]:
    parsed = parse_ref(ref)
    if parsed.version is None:
        raise InvalidInput(f"expected NAME:VERSION, got {ref!r}")
    return parsed.name, parsed.version


def _version_action(ref: str, action: str, registry: str | None, token: str | None, as_json: bool) -> None:
    with handle_errors():
        name, version = _exact(ref)
        reg = open_registry(registry, token)
        result = reg.archive_version(name, version) if action == "archived" else reg.delete_version(name, version)
    if as_json:
        print_json(result)
    else:
        stdout.print(f"{action} {result.ref}")


@app.command("archive")
def archive(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION")],
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Archive a version: hidden from 'latest' and lists, kept for lineage. Refused while an alias points at it."""
    _version_action(ref, "archived", registry, token, as_json)


@app.command("delete")
def delete(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION")],
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a version's record. Refused while an alias points at it."""
    _version_action(ref, "deleted", registry, token, as_json)


__all__ = ["app"]


def _optimize_table(outcome: object) -> Table:
    data = outcome.as_dict()  # type: ignore[attr-defined]
    table = new_table(f"variants of {data['source']} (original: {data['original_texts_per_s'] or '-'} inputs/s)")
    for column in ("method", "label agreement", "max prob diff", "inputs/s", "gate"):
        table.add_column(column)
    for c in data["candidates"]:
        table.add_row(
            c["method"],
            f"{c['agreement']:.2%} of {c['compared']}",
            f"{c['max_probability_diff']:.4f}",
            "-" if c["texts_per_s"] is None else f"{c['texts_per_s']:.0f}",
            "[green]passed[/green]" if c["passed"] else "[red]refused[/red]",
        )
    return table


@app.command("optimize")
def optimize(
    ref: Annotated[str, typer.Argument(help="The version to make faster: name:version or name@alias.")],
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            "-m",
            help="fused-int8-smooth, int8-smooth, int8, fused or graph (repeatable) "
            "[default: all but graph; none with --variant].",
        ),
    ] = None,
    eval_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help='Inputs to compare on: a JSON list (texts or records), {"texts": [...]}, a CSV of rows, '
            "images or a folder of them, or one text per line (repeatable).",
        ),
    ] = None,
    calibrate: Annotated[
        list[Path] | None,
        typer.Option(
            help="Texts the int8-smooth methods calibrate on, e.g. the training split "
            "(repeatable, same formats as --eval) [default: the evaluation texts]."
        ),
    ] = None,
    contract: Annotated[
        Path | None, typer.Option(help="Its golden examples are compared too [default: contract.yaml if present].")
    ] = None,
    variant: Annotated[
        Path | None, typer.Option(help="Gate and register an ONNX file made elsewhere (Optimum, Olive...) as well.")
    ] = None,
    min_agreement: Annotated[
        float, typer.Option(help="Share of inputs a variant must answer as the original.", min=0.0, max=1.0)
    ] = DEFAULT_MIN_AGREEMENT,
    no_measure: Annotated[
        bool, typer.Option("--no-measure", help="Take the first variant that passes, without measuring speed.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Gate and measure, register nothing.")] = False,
    alias: Annotated[list[str] | None, typer.Option(help="Point this alias at the new version (repeatable).")] = None,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="Make a new variant even if the version already has one by these methods "
            "[default: that one is returned, nothing made].",
        ),
    ] = False,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a faster variant of a version (int8, SmoothQuant int8, fused), gate it on agreement, register it.

    Exit codes: 0 registered (or --dry-run passed, or the version already has such a variant),
    1 refused (no variant agrees, or none is faster).
    """
    from conveyor.cli.output import EXIT_FAILURE
    from conveyor.optimize.run import DEFAULT_METHODS, GateRefused, evaluation_inputs, evaluation_texts
    from conveyor.optimize.run import optimize as run_optimize
    from conveyor.verify.contract import load_contract

    with handle_errors():
        contract_path = contract or (Path("contract.yaml") if Path("contract.yaml").is_file() else None)
        golden = [case.input for case in load_contract(contract_path).golden] if contract_path else []
        texts = evaluation_inputs(open_registry(registry, token), ref, golden, eval_file or [])
        notice = (lambda text: None) if as_json else (lambda text: stdout.print(f"[dim]{text}[/dim]", highlight=False))
        try:
            outcome = run_optimize(
                open_registry(registry, token),
                ref,
                texts,
                methods=method or ([] if variant else list(DEFAULT_METHODS)),
                variant=variant,
                calibration_texts=evaluation_texts([], calibrate) if calibrate else None,
                min_agreement=min_agreement,
                measure=not no_measure,
                register=not dry_run,
                aliases=alias or [],
                again=again,
                on_step=notice,
            )
        except GateRefused as refused:
            if as_json:
                print_json(refused.outcome.as_dict())
            else:
                stdout.print(_optimize_table(refused.outcome))
                for c in refused.outcome.candidates:
                    for d in c.agreement.disagreements[:5]:
                        stdout.print(
                            f"  {c.method}: {d['input']!r}: {d['original']} -> {d['variant']}", highlight=False
                        )
                stdout.print(f"[red]refused:[/red] {refused}", highlight=False)
            raise typer.Exit(EXIT_FAILURE) from None
    if as_json:
        print_json(outcome.as_dict())
        return
    if outcome.existing:
        stdout.print(f"{outcome.reason} (--again makes a new one)", highlight=False)
        return
    stdout.print(_optimize_table(outcome))
    speedup = f", {outcome.speedup:.2f}x in-process" if outcome.speedup else ""
    what = f"registered {outcome.registered.ref}" if outcome.registered else "dry run: nothing registered"
    stdout.print(f"{outcome.chosen.method}: {outcome.reason}{speedup}; {what}", highlight=False)  # type: ignore[union-attr]
