"""A model file or folder becomes a registered version: the one use-case behind ``conveyor models
register``, ``conveyor models import`` and ``pipeline watch``'s MLflow trigger.

A trained model passes its conversion gate first (``conveyor.convert``); a reference set is scored
and profiled as the version's monitoring baseline (some of its items, or else the gate's sample,
are kept to measure a canary's expected agreement on); then the registry stores every file by
sha256 and makes the version visible in one step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, InvalidInput


def register_path(
    reg: Any,
    path: Path,
    name: str,
    options: Any,
    *,
    conversion_flags: Sequence[str] = (),
    source: str | None = None,
    extra_files: Sequence[tuple[str, Path]] = (),
    description: str = "",
    model_description: str | None = None,
    tags: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
    aliases: Sequence[str] = (),
    metrics: dict[str, float] | None = None,
    run_id: str | None = None,
    skip_unchanged: bool = False,
    check: bool = True,
    reference: Path | None = None,
    generation_config: Path | None = None,
    report: Callable[[str], None] = print,
    progress: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Any:
    """PATH registered as the next version of NAME: a trained model through its conversion gate first.

    ``source`` names where the model came from in its lineage (default: the file itself and its git
    commit); ``extra_files`` (path in version, local file) are stored beside it.  ``report`` hears
    what the conversion found; ``progress`` makes what shows the upload (``conveyor.progress``).  A GGUF
    file is a generative version: its ``model.yaml`` and ``generation.yaml`` (``generation_config``, else
    the defaults) are written beside it (``conveyor.generative.registration``)."""
    import tempfile

    from conveyor.convert import is_framework_model
    from conveyor.registry.records import Lineage
    from conveyor.serving.intake import check_servable

    metrics, properties = dict(metrics or {}), dict(properties or {})
    scratch = None
    original_path = path
    converting = is_framework_model(path)
    if converting:
        from conveyor.convert import convert_model

        scratch = tempfile.TemporaryDirectory(prefix="conveyor-convert-")
        conversion = convert_model(path, Path(scratch.name) / "model", name, options)
        converted = conversion.spec.source
        assert converted is not None
        report(
            f"converted {path.name} ({converted.framework} {converted.framework_version}, {converted.converter}) to "
            f"ONNX: {_inputs_of(conversion.spec)}; gate passed: {conversion.report.summary()}"
        )
        metrics = {**conversion.report.metrics(), **metrics}
        properties = {"converter": converted.converter, "precision": conversion.report.precision, **properties}
        path = conversion.folder
    elif path.suffix == ".gguf" and path.is_file():  # serving.spec.GGUF_SUFFIX (spec imports yaml: not at start-up)
        from conveyor.generative.registration import gguf_version_files

        if reference is not None:
            raise InvalidInput("--reference: a generative model keeps no reference profile yet")
        scratch = tempfile.TemporaryDirectory(prefix="conveyor-gguf-")
        written, facts = gguf_version_files(path, name, generation_config, Path(scratch.name))
        extra_files = [*extra_files, *written]
        properties = {**facts, **properties}
        shown = ", ".join(f"{key.removeprefix('gguf.')} {value}" for key, value in facts.items())
        report(f"{path.name}: {shown}")
    elif generation_config is not None:
        raise InvalidInput("--generation-config: for a .gguf model file, or a new prompt of a version with --from")
    if conversion_flags and not converting:
        raise InvalidInput(
            f"{', '.join(conversion_flags)}: for a trained model (joblib, pickle, XGBoost, LightGBM, PyTorch, a "
            "transformers folder) only"
        )
    lineage = Lineage(run_id=run_id, metrics=metrics, source=source)
    if converting and source is None:
        from conveyor.registry.base import git_commit

        where = original_path.resolve()
        lineage = lineage.model_copy(update={"source": str(where), "git_commit": git_commit(where.parent)})
    extra = list(extra_files)
    gate_sample = getattr(options, "sample", None) if converting else None
    agreement_items = reference or gate_sample
    profile_dir = tempfile.TemporaryDirectory(prefix="conveyor-profile-") if agreement_items is not None else None
    try:
        if reference is not None and profile_dir is not None:
            extra.append(_reference_profile(path, reference, Path(profile_dir.name) / "profile.json", report))
            extra.append(_reference_sample(path, reference, Path(profile_dir.name) / "reference-sample.json"))
        elif gate_sample is not None and profile_dir is not None and _takes_items(path):
            try:
                kept = _reference_sample(path, gate_sample, Path(profile_dir.name) / "reference-sample.json")
            except ConveyorError as exc:  # a sample only the gate reads
                report(f"no reference sample kept from {gate_sample.name}: {exc}; pass --reference for one")
            else:
                extra.append(kept)
                report(
                    f"reference sample: {len(json.loads(kept[1].read_text()))} items of {gate_sample.name} (the "
                    "gate's --sample), what a canary's expected agreement is measured on; no drift profile "
                    "without --reference"
                )
        with progress() as bar:
            return reg.register(
                path,
                name,
                description=description,
                tags=tags or {},
                properties=properties,
                aliases=list(aliases),
                lineage=lineage,
                model_description=model_description,
                progress=bar,
                skip_unchanged=skip_unchanged,
                check=check_servable if check else None,
                extra_files=extra,
            )
    finally:
        for folder in (scratch, profile_dir):
            if folder is not None:
                folder.cleanup()


def _reference_profile(model: Path, reference: Path, out: Path, report: Callable[[str], None]) -> tuple[str, Path]:
    """The reference rows scored by the served model's code, profiled: the version's baseline."""
    from conveyor.monitoring.profile import PROFILE_FILE
    from conveyor.monitoring.run import new_reference_profile
    from conveyor.serving.spec import resolve_model

    profile = new_reference_profile(resolve_model(model), reference, reference.name, report)
    profile.save(out)
    quality, check = profile.quality, profile.self_check
    labelled = f", {quality.labelled} labelled (quality estimates)" if quality else ""
    alarms = f"; {check.false_alarms} false alarms in {check.splits} half-splits" if check else ""
    columns = f"{len(profile.columns)} columns{labelled}{alarms}"
    report(f"reference profile: {profile.items} items of {reference.name}, {columns}")
    return PROFILE_FILE, out


def _reference_sample(model: Path, reference: Path, out: Path) -> tuple[str, Path]:
    """Some reference items themselves (a seeded random choice): what a canary's expected agreement with
    another version is measured on at ``rollout start``.  REFERENCE is ``--reference``, else the gate's
    ``--sample``: rows the model answers are fit to compare two versions on, while only a reference set
    the model was judged on is a baseline for drift."""
    import random

    from conveyor.monitoring.observe import reference_items
    from conveyor.monitoring.profile import REFERENCE_SAMPLE_FILE, REFERENCE_SAMPLE_SIZE
    from conveyor.serving.spec import resolve_model

    items = reference_items(reference, resolve_model(model).spec)
    if len(items) > REFERENCE_SAMPLE_SIZE:
        items = random.Random(0).sample(items, REFERENCE_SAMPLE_SIZE)
    out.write_text(json.dumps(items))
    return REFERENCE_SAMPLE_FILE, out


def _takes_items(model: Path) -> bool:
    """Whether the model's inputs are items a sample file holds as the server takes them (rows, texts)."""
    from conveyor.serving.spec import resolve_model

    return resolve_model(model).spec.task.row_inputs


def _inputs_of(spec: Any) -> str:
    if spec.tabular:
        return f"{spec.task}, {len(spec.features)} features"
    if spec.image is not None:
        image = spec.image
        return f"{spec.task}, {image.channels}x{image.height}x{image.width} images, {len(spec.labels)} labels"
    if spec.task.takes_text:
        return f"{spec.task}, labels {spec.labels}"
    return str(spec.task)
