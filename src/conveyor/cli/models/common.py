"""What the ``conveyor models`` commands share: the registry options and how a version is shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from conveyor.registry.records import ModelVersion

from conveyor.cli.output import fail, new_table, stdout
from conveyor.precision import Precision
from conveyor.sizes import human_size

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", envvar="CONVEYOR_REGISTRY", help="Registry: http(s) URL, database URL or folder."),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="CONVEYOR_TOKEN", help="Bearer token.", show_default=False)
]

# The conversion gate's options, shared by `models register` and `models import`.
MinAgreementOption = Annotated[
    float, typer.Option(help="Gate: the share of rows whose label must agree (classifiers).", min=0, max=1)
]
ToleranceOption = Annotated[
    float, typer.Option(help="Gate: the largest difference of a probability, or of a value (relative above 1).", min=0)
]
PrecisionOption = Annotated[
    Precision,
    typer.Option(
        help="A tabular model: what the graph computes numbers in; auto tries float32, then double where float32 "
        "changes the answers beyond the gate (scikit-learn offers double; XGBoost and LightGBM float32 only)."
    ),
]
PositiveLabelOption = Annotated[
    str | None, typer.Option(help="A binary classifier's label /predict answers as {LABEL: true|false}.")
]
ReferenceOption = Annotated[
    Path | None,
    typer.Option(
        help="Rows the model was judged on (CSV, JSON, JSON Lines, or text lines): scored here, their "
        "profile is kept as monitoring/profile.json, the baseline `conveyor monitor` compares traffic with, "
        "and a seeded sample of them as the one a canary's expected agreement is measured on (held-out rows "
        "measure it best: a model agrees with itself more on the rows it was trained on).",
        exists=True,
        dir_okay=False,
    ),
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
        ("derived", v.lineage.derived_from and f"from {v.lineage.derived_from}"),
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
