"""``conveyor rollout export``: the same strategy as Kubernetes manifests (Argo Rollouts, Gateway API, KServe,
or the plain Deployment and Service)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.output import handle_errors, stderr
from conveyor.cli.settings_options import with_spec_options
from conveyor.cli.threshold_options import with_threshold_options
from conveyor.rollout.config import RolloutSettings

#: the rollout spec's settings a manifest uses (the others are the running controller's)
EXPORTED = ("steps", "interval", "contract")


@with_threshold_options
@with_spec_options(RolloutSettings, "rollout", only=EXPORTED)
def export_manifests(
    image: Annotated[str, typer.Option(help="The model-server image of the new version.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="argo-rollouts, gateway-api (Argo Rollouts moving an HTTPRoute), kserve, or kubernetes (a plain "
            "Deployment and Service).",
        ),
    ] = "argo-rollouts",
    gateway: Annotated[
        str, typer.Option(help="With --format gateway-api: the Gateway the HTTPRoute attaches to.")
    ] = "gateway",
    name: Annotated[str | None, typer.Option(help="Kubernetes name [default: the rollout service].")] = None,
    replicas: Annotated[int, typer.Option(help="With --format kubernetes: the Deployment's replicas.", min=1)] = 1,
    host_port: Annotated[
        int | None,
        typer.Option(help="With --format kubernetes: publish the server on this node port (podman kube play).", min=1),
    ] = None,
    prometheus: Annotated[
        str | None,
        typer.Option(
            help="With argo-rollouts and gateway-api: the Prometheus address the AnalysisTemplate queries "
            "[default: http://prometheus-operated.monitoring:9090, kube-prometheus-stack's].",
            show_default=False,
        ),
    ] = None,
    router_job: Annotated[
        str | None,
        typer.Option(
            help="With argo-rollouts and gateway-api: the Prometheus job that scrapes Conveyor's router mirroring "
            "in front of the pods; the analysis then judges mirrored agreement from its counters.",
        ),
    ] = None,
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="With --format kserve: where KServe fetches the model folder (s3://, gs://, pvc://, oci://, "
            "https://...tar.gz).",
        ),
    ] = None,
    model_digest: Annotated[
        str | None,
        typer.Option(
            help="With --format kserve: the version digest (sha256:...) the server checks the fetched files "
            "against before it serves them.",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="conveyor.yaml with a rollout section.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write; - for stdout.")] = Path("-"),
    **options: str | float | int | None,
) -> None:
    """Write Kubernetes manifests for the same strategy: Argo Rollouts (+ AnalysisTemplate and PodMonitor), the same
    over a Gateway API HTTPRoute (weights and mirroring by the Argo Rollouts Gateway API plugin), KServe (a
    ServingRuntime and an InferenceService), or the plain Deployment and Service the image runs as (podman kube
    play runs it too)."""
    from conveyor.rollout import service as rollouts

    with handle_errors():
        spec: dict[str, Any] = {key: options.pop(key) for key in EXPORTED}  # the rest: thresholds
        request = rollouts.ExportRequest(
            image, fmt, name=name, **spec, config=config,
            thresholds=options, gateway=gateway, replicas=replicas, host_port=host_port,
            prometheus=prometheus, router_job=router_job, storage_uri=storage_uri, model_digest=model_digest,
        )  # fmt: skip
        text = rollouts.export(request)
        if str(output) == "-":
            sys.stdout.write(text)
        else:
            output.write_text(text)
            stderr.print(f"wrote {output}", highlight=False)
