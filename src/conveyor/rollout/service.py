"""The rollout use-cases, once: start, retry, undo, a command to a running rollout, export, take down.

Every front end (``conveyor rollout``, ``conveyor.api``, the dashboard's buttons) parses its own
input into one typed request, calls one function here and renders what comes back, as MLServer's
REST and gRPC servers both call its ``DataPlane``.  What a use-case decides (which thresholds
exist, what ``retry`` and ``undo`` roll out, that a controller is started when none runs, how
``export`` merges conveyor.yaml with the request) is therefore decided for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from conveyor.errors import Conflict, ConveyorError, InvalidInput, NotFound
from conveyor.rollout.analysis.thresholds import checked_thresholds
from conveyor.rollout.config import RolloutSettings, load_settings
from conveyor.rollout.plan import Request, TakenDown, chosen_spec, new_status, pick_service, spawn_controller, take_down
from conveyor.rollout.status import Action, RolloutStatus, StatusStore

__all__ = [
    "CommandRequest",
    "ExportRequest",
    "RetryRequest",
    "StartRequest",
    "UndoRequest",
    "command",
    "down",
    "export",
    "retry",
    "start",
    "undo",
]

#: ``conveyor rollout start``'s options, as one request (None: conveyor.yaml's ``rollout:``, else the default)
StartRequest = Request


@dataclass(frozen=True)
class RetryRequest:
    """Roll out the same version again after an abort, as last time."""

    service: str | None = None  # None: the only service with a rollout


@dataclass(frozen=True)
class UndoRequest:
    """Roll back to the version that was stable before the last successful rollout."""

    service: str | None = None
    strategy: str | None = None  # None: as last time
    steps: str | None = None


@dataclass(frozen=True)
class CommandRequest:
    """Tell a running rollout's controller to act, and wait up to ``wait`` seconds until it has."""

    action: Action
    service: str | None = None
    reason: str | None = None
    weight: float | None = None  # the canary's share, for action "weight"
    wait: float = 30.0


@dataclass(frozen=True)
class ExportRequest:
    """Kubernetes manifests for the same strategy (None: conveyor.yaml's ``rollout:``, else the default)."""

    image: str
    format: Literal["argo-rollouts", "gateway-api", "kserve", "kubernetes"] | str = "argo-rollouts"
    name: str | None = None
    steps: str | None = None
    interval: str | None = None
    contract: str | Path | None = None
    config: Path | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    gateway: str = "gateway"  # gateway-api: the Gateway the HTTPRoute attaches to
    replicas: int = 1  # kubernetes: the Deployment's
    host_port: int | None = None  # kubernetes: published on the node (a local engine: podman kube play)
    prometheus: str | None = None  # argo-rollouts, gateway-api: the address the analysis queries [default: PROMETHEUS]
    router_job: str | None = None  # ... the Prometheus job scraping Conveyor's router in front of the pods
    storage_uri: str | None = None  # kserve: where KServe's storage initializer fetches the model files
    model_digest: str | None = None  # kserve: the version digest the server checks those files against


EXPORT_FORMATS = ("argo-rollouts", "gateway-api", "kserve", "kubernetes")


def _known_thresholds(given: Mapping[str, Any]) -> dict[str, Any]:
    """The thresholds that are set, refusing names no metric declares (a typo must not pass silently;
    a name a broken metrics plugin would have declared is refused with that plugin's line)."""
    from conveyor.rollout.analysis.thresholds import all_thresholds

    known = {t.name for t in all_thresholds()}
    unknown = sorted(set(given) - known)
    if unknown:
        from conveyor import plugins

        raise plugins.missing("metrics") or InvalidInput(
            f"unknown threshold(s) {unknown}; thresholds: {', '.join(sorted(known))}"
        )
    return {name: value for name, value in given.items() if value is not None}


def _begin(status: RolloutStatus, background: bool) -> RolloutStatus:
    """Record the new rollout (Conflict when one is active) and start its controller in the background,
    unless the caller runs it (``background=False``: the CLI's live view)."""
    StatusStore(status.service).create(status)
    if background:
        spawn_controller(status.service)
    return status


def start(request: StartRequest, config: Path | None = None, background: bool = True) -> RolloutStatus:
    """Check the request against the router, the registry and the supply-chain policy; record it; run it."""
    from dataclasses import replace

    settings = load_settings(config)
    _known_thresholds(settings.thresholds)  # conveyor.yaml's names, before they are merged and checked
    checked = replace(request, thresholds=_known_thresholds(request.thresholds))
    return _begin(new_status(checked, settings), background)


def _again(
    service: str | None, want: str, ref_of: Callable[[RolloutStatus], str | None], **changes: Any
) -> RolloutStatus:
    """A new rollout planned from the last one of ``service``, which must have ended ``want``."""
    store = StatusStore(pick_service(service))
    last = store.load()
    if last.phase != want:
        raise Conflict(f"the last rollout of {store.service!r} is {last.phase}, not {want}")
    ref = ref_of(last)
    if not ref:
        raise Conflict("the last rollout does not record a previous version to go back to")
    settings = RolloutSettings(
        strategy=changes.get("strategy") or last.strategy,
        steps=last.steps,
        interval=last.interval_s,
        rollback_window=last.rollback_window_s,
        contract=last.contract_path,
        command=last.command,
        thresholds=last.thresholds,
    )
    image = last.canary.ref if last.canary.kind == "container" and want == "aborted" else None
    request = Request(ref, service=store.service, router=last.router, steps=changes.get("steps"), image=image)
    return new_status(request, settings)


def retry(request: RetryRequest, background: bool = True) -> RolloutStatus:
    """The same version again, with the same strategy, steps and thresholds (after an abort)."""
    return _begin(_again(request.service, "aborted", lambda last: last.ref), background)


def undo(request: UndoRequest, background: bool = True) -> RolloutStatus:
    """The previous stable version again (after a success); strategy and steps as last time unless given."""
    planned = _again(
        request.service, "succeeded", lambda last: last.previous_ref, strategy=request.strategy, steps=request.steps
    )
    return _begin(planned, background)


def command(request: CommandRequest, on_notice: Callable[[str], None] | None = None) -> RolloutStatus:
    """Record the command and wait until the controller has acted on it (starting one if none runs).

    An abort also waits for the rollback to finish.  Raises ConveyorError when the controller has not
    acted within ``request.wait`` seconds (the command stays recorded: it acts when it runs).
    """
    if request.action == "weight" and (request.weight is None or not 0 <= request.weight <= 100):
        shown = "none" if request.weight is None else f"{request.weight:g}"
        raise InvalidInput(f"the canary's traffic share must be between 0 and 100, not {shown}")
    store = StatusStore(pick_service(request.service))
    sent = store.command(request.action, request.reason, weight=request.weight)
    if not store.controller_running():
        spawn_controller(store.service)
        if on_notice is not None:
            on_notice("no controller was running: started one in the background")
    deadline = time.monotonic() + request.wait
    current = store.load()
    while current.handled_command < sent.id and time.monotonic() < deadline:
        time.sleep(0.2)
        current = store.load()
    if current.handled_command < sent.id:
        raise ConveyorError(
            f"{request.action} recorded, but the controller has not acted on it after {request.wait:g}s"
        )
    if request.action == "abort":
        while current.active and time.monotonic() < deadline + 30:
            time.sleep(0.2)
            current = store.load()
    return current


def down(service: str | None = None) -> TakenDown:
    """Stop the backends the service's rollouts started; take them and any dead backend off the router."""
    return take_down(StatusStore(pick_service(service)))


def export(request: ExportRequest) -> str:
    """The manifests' text: conveyor.yaml's ``rollout:`` section merged with the request, as ``start`` merges it."""
    from conveyor.durations import parse_duration
    from conveyor.rollout.export import PROMETHEUS, export_argo_rollouts, export_kserve

    if request.format not in EXPORT_FORMATS:
        raise InvalidInput(
            f"--format must be {', '.join(EXPORT_FORMATS[:-1])} or {EXPORT_FORMATS[-1]}, not {request.format!r}"
        )
    settings = load_settings(request.config)
    spec = chosen_spec(request, settings)
    steps = spec.steps
    name = request.name or spec.service or "model"
    if request.format == "kserve":
        if not request.storage_uri:
            raise InvalidInput(
                "--format kserve needs --storage-uri: where KServe fetches the model folder "
                "(s3://, gs://, pvc://, oci://, or https://... of a .tar.gz)"
            )
        return export_kserve(name, request.image, steps, request.storage_uri, request.model_digest)
    if request.format == "kubernetes":
        from conveyor.rollout.export import export_kubernetes

        return export_kubernetes(name, request.image, request.replicas, request.host_port)
    seconds = parse_duration(spec.interval)
    contract_path = Path(spec.contract) if spec.contract else None
    if contract_path is not None and not contract_path.is_file():
        raise NotFound(f"contract {contract_path} does not exist")
    _known_thresholds(settings.thresholds)  # conveyor.yaml's names, before they are merged and checked
    limits = checked_thresholds({**settings.thresholds, **_known_thresholds(request.thresholds)}, "rollout.thresholds")
    text = contract_path.read_text() if contract_path else None
    prometheus, router_job = request.prometheus or PROMETHEUS, request.router_job
    if request.format == "gateway-api":
        from conveyor.rollout.export_gateway import export_gateway_api

        return export_gateway_api(
            name, request.image, steps, seconds, limits, text, request.gateway, prometheus, router_job
        )
    return export_argo_rollouts(name, request.image, steps, seconds, limits, text, prometheus, router_job)
