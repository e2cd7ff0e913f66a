"""Planning a rollout: from what a user asked for to the status record the controller drives.

The use-cases in :mod:`conveyor.rollout.service` call these; what is decided here (which version
is stable, which router, the mirror share each strategy gets by default, whether the supply-chain
policy lets the canary in) is decided before anything moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from conveyor.durations import parse_duration
from conveyor.errors import ClientError, Conflict, ConveyorError, InvalidInput, NotFound, NotReady
from conveyor.registry.refs import looks_like_ref
from conveyor.rollout import backends
from conveyor.rollout.analysis.expectation import ExpectedAgreement, expectation_line
from conveyor.rollout.analysis.metric import MeasurementError
from conveyor.rollout.analysis.thresholds import checked_thresholds
from conveyor.rollout.config import RolloutSettings
from conveyor.rollout.router_client import RouterClient
from conveyor.rollout.status import Backend, RolloutStatus, StatusStore, list_services, router_address

#: the share of stable traffic mirrored to the new version, when neither the user nor conveyor.yaml set one
DEFAULT_MIRROR = {"canary": 20.0, "blue-green": 50.0}


def pick_service(service: str | None) -> str:
    """The named service, or the only one with a rollout."""
    if service:
        return service
    services = [s for s in list_services() if (StatusStore(s).find() is not None)]
    if len(services) == 1:
        return services[0]
    if not services:
        raise NotFound("no rollouts yet; start one with `conveyor rollout start REF`")
    raise InvalidInput(f"several services have rollouts, name one: {', '.join(services)}")


def resolve_ref(ref: str, allow_unregistered: bool) -> tuple[str, str, str | None, int | None]:
    """(ref to serve, version label, model name, model version): registry refs are pinned to their version."""
    from conveyor.registry.config import open_registry

    if looks_like_ref(ref):
        try:
            version = open_registry().resolve(ref)
            pinned = f"{version.name}:{version.version}"
            return pinned, pinned, version.name, version.version
        except ClientError:
            if not allow_unregistered:
                raise
    return ref, ref, None, None


def stable_backend(store: StatusStore, router: RouterClient) -> Backend:
    """What the router's stable backend is, and whether a previous rollout started it (then we may stop it)."""
    table = router.routes()
    spec = table.backend("stable")
    if spec is None:
        return Backend(ref="", version="", url=None, owned=False)
    if "stable" in router.unhealthy_backends():
        raise Conflict(
            f"the router's stable backend ({spec.version or 'unnamed'} at {spec.url}) is down, so a canary "
            f"would have nothing to be compared with: restart it, or take it off with "
            f"`conveyor rollout down {store.service}` and start again",
        )
    previous = store.find()
    if previous is not None:
        serving = previous.canary if previous.phase == "succeeded" else previous.stable
        if serving.url == spec.url:
            return serving
    return Backend(ref=spec.version or spec.url, version=spec.version or spec.url, url=spec.url, owned=False)


@dataclass
class Request:
    """What a user asked for; None means: conveyor.yaml's ``rollout:`` section, else the default."""

    ref: str
    service: str | None = None
    router: str | None = None
    strategy: str | None = None
    steps: str | list[float] | None = None
    interval: str | float | None = None
    rollback_window: str | float | None = None
    contract: str | Path | None = None
    no_contract: bool = False
    image: str | None = None
    command: str | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    require_signed: bool = False
    trusted_keys: list[Path] = field(default_factory=list)


def chosen_spec(request: Any, settings: RolloutSettings) -> RolloutSettings:
    """conveyor.yaml's ``rollout:`` section with what the request sets over it, checked as one spec.

    ``request`` (a :class:`Request`, or the service's export request): its fields named like the
    spec's are its options (``rollout start --steps`` ...);
    the thresholds are merged apart, with the metric table (:func:`checked_thresholds`)."""
    named = [f.name for f in fields(request) if f.name in RolloutSettings.model_fields and f.name != "thresholds"]
    given = {name: getattr(request, name) for name in named if getattr(request, name) not in (None, "")}
    if isinstance(given.get("contract"), Path):
        given["contract"] = str(given["contract"])
    try:
        return RolloutSettings.model_validate({**settings.model_dump(), **given})
    except ValidationError as exc:
        problems = (
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise InvalidInput("; ".join(p.replace("Value error, ", "") for p in problems)) from None


def registry_requires_signature(model_name: str | None) -> bool:
    """Whether the registry's policy (model tag require-signed=true) covers a registered canary."""
    if model_name is None:
        return False
    from conveyor.registry.config import open_registry
    from conveyor.supply_chain.model_signature import policy_requires_signature

    return policy_requires_signature(open_registry(), model_name)


def new_status(request: Request, settings: RolloutSettings) -> RolloutStatus:
    """Validate the request against the router and the registry; the record of a rollout not started yet."""
    spec = chosen_spec(request, settings)  # validated before any work
    command = spec.command
    interval_s = parse_duration(spec.interval)
    rollback_window_s = parse_duration(spec.rollback_window)
    serve_ref, version, model_name, model_version = resolve_ref(
        request.ref, allow_unregistered=bool(command or request.image)
    )
    service = spec.service or model_name or request.ref.split(":")[0].split("@")[0]
    strategy = spec.strategy
    router_url = spec.router or router_address(service)
    if router_url is None:
        raise NotFound(f"no router for service {service!r}: start `conveyor router --service {service}`")
    given = {k: v for k, v in request.thresholds.items() if v is not None}
    chosen = {**settings.thresholds, **given}
    chosen.setdefault("mirror_percent", DEFAULT_MIRROR[strategy])
    chosen["contract"] = not request.no_contract
    limits = checked_thresholds(chosen, "rollout.thresholds")
    contract_path = Path(spec.contract) if spec.contract else None
    if contract_path is not None and not contract_path.exists():
        raise NotFound(f"contract {contract_path} does not exist")
    policy = settings.supply_chain
    trusted_keys = request.trusted_keys or [Path(p) for p in policy.trusted_keys]
    if request.require_signed or policy.require or registry_requires_signature(model_name):
        from conveyor.rollout.supply_chain_gate import check_canary

        # before the router is asked anything or a backend starts: a refusal moves nothing
        check_canary(serve_ref, model_name is not None, request.image, trusted_keys)
    store = StatusStore(service)
    client = RouterClient(router_url)
    try:
        stable = stable_backend(store, client)
    except MeasurementError as exc:
        raise NotReady(str(exc)) from None
    finally:
        client.close()
    if stable.url is not None and stable.version == version:
        raise Conflict(f"{version} is already the stable version of service {service!r}")
    canary = Backend(ref=request.image or serve_ref, version=version, kind="container" if request.image else "process")
    expected, why_not = None, _not_measured(request.image is not None, model_name is not None, stable)
    if not why_not and limits.mirror_percent > 0 and limits.min_agreement is None:
        expected, why_not = expected_agreement(stable.version, serve_ref)
    return RolloutStatus(
        service=service,
        strategy=strategy,
        ref=serve_ref,
        model_name=model_name,
        model_version=model_version,
        router=router_url,
        steps=spec.steps,
        interval_s=interval_s,
        rollback_window_s=rollback_window_s,
        stable=stable,
        canary=canary,
        command=None if request.image else command,
        trusted_keys=[str(key.resolve()) for key in trusted_keys],
        contract_path=str(contract_path.resolve()) if contract_path else None,
        thresholds=limits,
        expected_agreement=expected,
        agreement_basis=expectation_line(limits, expected, why_not),
        previous_ref=stable.ref or None,
    )


def _not_measured(from_image: bool, registered: bool, stable: Backend) -> str:
    """Why the two versions' agreement cannot be measured offline at all ("" where it can be tried)."""
    if from_image:
        return "the new version runs from an image"
    if not registered:
        return "the new version is not a registered one"
    if stable.url is None:
        return "there is no stable version to compare with"
    if not looks_like_ref(stable.version):
        return f"the stable version ({stable.version}) is not a registered one"
    return ""


def expected_agreement(stable_ref: str, canary_ref: str) -> tuple[ExpectedAgreement | None, str]:
    """The two versions' agreement on the reference sample; else None (the fixed fallback) and why."""
    from conveyor.rollout.offline_agreement import NothingToMeasure, measure_expected_agreement

    try:
        return measure_expected_agreement(stable_ref, canary_ref), ""
    except NothingToMeasure as exc:
        return None, str(exc)
    except (ConveyorError, ValueError) as exc:  # a version gone, a sample the stable version cannot read
        return None, f"measuring failed: {exc}"


@dataclass
class TakenDown:
    stopped: list[str]  # versions whose backends were stopped
    removed: list[str]  # backends taken off the router
    router_error: str | None = None  # the router could not be changed


def take_down(store: StatusStore) -> TakenDown:
    """Stop the backends rollouts of the service started; take them and any dead backend off the router."""
    last = store.load()
    if last.active:
        raise Conflict(f"the rollout of {last.ref} is {last.phase}: abort it first")
    stopped, stopped_urls = [], set()
    for backend in (last.stable, last.canary):
        if backend.owned and (backend.pid or backend.container) and backends.alive(backend):
            backends.stop(backend)
            stopped.append(backend.version)
        if backend.owned and backend.url:
            stopped_urls.add(backend.url)
    result = TakenDown(stopped, [])
    client = RouterClient(last.router)
    try:
        table = client.routes()
        gone = client.unhealthy_backends() | {b.name for b in table.backends if b.url in stopped_urls}
        if gone:
            client.set_routes(table.without(gone))
            result.removed = sorted(gone)
    except MeasurementError as exc:
        result.router_error = str(exc)
    finally:
        client.close()
    return result


def spawn_controller(service: str) -> None:
    """Run the controller of ``service``'s rollout in the background (its log: controller.log beside the status)."""
    from conveyor.launch import conveyor_argv, spawn_detached

    spawn_detached(conveyor_argv("rollout", "controller", service), StatusStore(service).dir / "controller.log")
