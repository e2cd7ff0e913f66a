"""``conveyor models import``: a model version from another registry (MLflow's) into a gated new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.models.common import (
    JsonOption,
    MinAgreementOption,
    PositiveLabelOption,
    ReferenceOption,
    RegistryOption,
    TokenOption,
    ToleranceOption,
    _pairs,
)
from conveyor.cli.models.register import _convert_options, _report, show_registered
from conveyor.cli.output import ProgressBar, handle_errors
from conveyor.registry.config import open_registry
from conveyor.registry.storage_errors import NOTHING_REGISTERED, outcome


def import_model(
    source: Annotated[
        str,
        typer.Argument(
            help="mlflow://HOST:PORT/NAME/VERSION, mlflow://HOST:PORT/NAME@ALIAS (mlflow+https:// for TLS), or "
            "models:/NAME/VERSION and models:/NAME@ALIAS with MLFLOW_TRACKING_URI.",
            show_default=False,
        ),
    ],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Registered name [default: MLflow's].")] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow's tracking server, for a models:/ reference."),
    ] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Point this alias at the new version (repeatable).")] = None,
    mlflow_alias: Annotated[
        list[str] | None,
        typer.Option(
            help="ALIAS=MLFLOW_ALIAS: when Conveyor's ALIAS reaches this version (a promotion), MLflow's MLFLOW_ALIAS "
            "moves to the MLflow version too; ALIAS alone: the same name (repeatable).",
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Mutable tag key=value (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="What this version is [default: MLflow's description].")] = "",
    sample: Annotated[
        Path | None,
        typer.Option(
            help="Rows for the conversion gate (.csv or .json) [default: the input example logged with the model].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    positive_label: PositiveLabelOption = None,
    labels: Annotated[
        str | None,
        typer.Option(help="A classifier that numbers its classes: their names 0..K-1, comma-separated."),
    ] = None,
    min_agreement: MinAgreementOption = 0.999,
    tolerance: ToleranceOption = 1e-4,
    reference: ReferenceOption = None,
    skip_unchanged: Annotated[
        bool, typer.Option(help="Importing a version again registers nothing (its aliases still move).")
    ] = True,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import an MLflow model version: its files with checksums, its run's metrics and parameters as
    lineage, the model converted to ONNX through the same gate as `models register` (ONNX, scikit-learn,
    XGBoost, LightGBM and PyTorch flavors).  What Conveyor decides later (verify, challenge, an alias)
    is written back to the MLflow version as conveyor.* tags.  Needs `pip install 'conveyor-ml[mlflow]'`
    (and the framework's extra).  See docs/interop.md."""
    with handle_errors(), outcome(NOTHING_REGISTERED):  # the registry may fail as it opens
        from conveyor.interop.mlflow_import import import_version
        from conveyor.interop.mlflow_ref import parse_mlflow_ref

        ref = parse_mlflow_ref(source, tracking_uri)
        options = _convert_options(sample, min_agreement, tolerance, positive_label, labels, None, None, "0", "1")
        version = import_version(
            open_registry(registry, token), ref, options, name=name, report=_report,
            progress=lambda: ProgressBar(enabled=not as_json), description=description, tags=_pairs(tag, "--tag"),
            aliases=alias or [], skip_unchanged=skip_unchanged, reference=reference,
            mlflow_aliases=_alias_pairs(mlflow_alias or []),
        )  # fmt: skip
    show_registered(version, as_json)


def _alias_pairs(given: list[str]) -> dict[str, str]:
    """``production=champion`` and ``production`` (the same name in MLflow) as {Conveyor alias: MLflow alias}."""
    from conveyor.registry.refs import check_alias

    pairs = {}
    for item in given:
        ours, _, theirs = item.partition("=")
        pairs[check_alias(ours.strip())] = theirs.strip() or ours.strip()
    return pairs
