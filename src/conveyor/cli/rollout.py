"""``conveyor rollout``: blue-green and canary rollouts through the router, with analysis and rollback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from conveyor.rollout.config import RolloutSettings
    from conveyor.rollout.router_client import RouterClient
    from conveyor.rollout.status import Action, Backend, RolloutStatus, StatusStore

from conveyor.cli.output import EXIT_FAILURE, fail, handle_errors, new_table, print_json, stderr, stdout
from conveyor.errors import ClientError, Conflict, InvalidInput, NotFound, NotReady
from conveyor.registry.refs import looks_like_ref

app = typer.Typer(
    rich_markup_mode=None,
    help="Blue-green and canary rollouts: traffic steps through `conveyor router`, analysis, promotion or rollback.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ServiceArg = Annotated[str | None, typer.Argument(help="The service (default: the only one with a rollout).")]


def _pick_service(service: str | None) -> str:
    from conveyor.rollout.status import StatusStore, list_services

    if service:
        return service
    services = [s for s in list_services() if (StatusStore(s).find() is not None)]
    if len(services) == 1:
        return services[0]
    if not services:
        raise NotFound("no rollouts yet; start one with `conveyor rollout start REF`")
    raise InvalidInput(f"several services have rollouts, name one: {', '.join(services)}")


def _resolve(ref: str, allow_unregistered: bool) -> tuple[str, str, str | None, int | None]:
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


def _stable_backend(store: StatusStore, router: RouterClient) -> Backend:
    """What the router's stable backend is, and whether a previous rollout started it (then we may stop it)."""
    from conveyor.rollout.status import Backend

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


def _spawn_controller(service: str) -> None:
    from conveyor.rollout.status import StatusStore

    store = StatusStore(service)
    log = open(store.dir / "controller.log", "ab")  # noqa: SIM115 (the child keeps it)
    subprocess.Popen(
        [sys.executable, "-m", "conveyor", "rollout", "controller", service],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _follow(store: StatusStore, as_json: bool) -> RolloutStatus:
    """Run the controller here; draw the live view on a terminal, print each event otherwise."""
    from rich.live import Live

    from conveyor.rollout import view
    from conveyor.rollout.controller import Controller

    controller = Controller(store)
    if as_json:
        final = controller.run()
        print_json(final.model_dump(mode="json"))
        return final
    if stdout.is_terminal:
        snapshots: list[dict | None] = [None]
        with Live(console=stdout.rich(), refresh_per_second=2, transient=False) as live:

            def draw(status: RolloutStatus) -> None:
                now = _stats(status)
                live.update(view.render(status, now, snapshots[-1]))
                snapshots.append(now)
                del snapshots[:-2]

            return controller.run(on_tick=draw)
    seen = [0]

    def print_events(status: RolloutStatus) -> None:
        for event in status.events[seen[0] :]:
            stdout.print(f"[dim]{time.strftime('%H:%M:%S', time.localtime(event.at))}[/dim] {event.message}")
        seen[0] = len(status.events)

    return controller.run(on_tick=print_events)


def _stats(status: RolloutStatus) -> dict | None:
    from conveyor.rollout.analysis import MeasurementError
    from conveyor.rollout.router_client import RouterClient

    client = RouterClient(status.router, timeout=2)
    try:
        return client.stats()
    except MeasurementError:
        return None
    finally:
        client.close()


def _finish(status: RolloutStatus) -> None:
    from conveyor.rollout import view

    colour = view.COLOURS.get(status.phase, "white")
    stdout.print(f"[{colour}]{status.phase}[/{colour}]: {status.message}", highlight=False)
    if status.phase == "aborted":
        raise typer.Exit(EXIT_FAILURE)


def _create_and_run(status: RolloutStatus, detach: bool, as_json: bool) -> None:
    from conveyor.rollout.status import StatusStore

    store = StatusStore(status.service)
    store.create(status)
    if detach:
        _spawn_controller(status.service)
        stdout.print(f"rollout {status.id} of {status.ref} started; `conveyor rollout status {status.service} --watch`")
        return
    _finish(_follow(store, as_json))


@app.command()
def start(
    ref: Annotated[str, typer.Argument(help="The new version: name:version or name@alias from the registry.")],
    service: Annotated[str | None, typer.Option(help="Service to roll out in [default: the model's name].")] = None,
    router: Annotated[
        str | None, typer.Option(help="Router URL [default: the one `conveyor router` recorded].")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="canary or blue-green [default: canary].")] = None,
    steps: Annotated[str | None, typer.Option(help="Canary traffic percentages, e.g. 10,25,50,100.")] = None,
    interval: Annotated[str | None, typer.Option(help="Time per step before its analysis, e.g. 30s, 2m.")] = None,
    rollback_window: Annotated[
        str | None, typer.Option(help="Blue-green: how long blue is kept after the switch.")
    ] = None,
    contract: Annotated[Path | None, typer.Option(help="Verification contract run against the canary.")] = None,
    no_contract: Annotated[bool, typer.Option("--no-contract", help="Skip the contract analysis.")] = False,
    image: Annotated[
        str | None, typer.Option(help="Run the new version from this image (podman/docker) instead of a process.")
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(help="Backend command template instead of `conveyor serve REF` ({port}, {ref}, {version})."),
    ] = None,
    min_requests: Annotated[int | None, typer.Option(help="Canary requests per window for a verdict.")] = None,
    max_error_rate: Annotated[float | None, typer.Option(help="Absolute ceiling on the canary's error rate.")] = None,
    max_error_rate_increase: Annotated[float | None, typer.Option(help="Canary minus stable error rate.")] = None,
    max_p99_ms: Annotated[float | None, typer.Option(help="Absolute ceiling on the canary's p99 latency.")] = None,
    max_p99_ratio: Annotated[float | None, typer.Option(help="Canary p99 / stable p99 ceiling.")] = None,
    mirror_percent: Annotated[
        float | None, typer.Option(help="Stable traffic copied to the canary for agreement (0: off).")
    ] = None,
    min_agreement: Annotated[float | None, typer.Option(help="Minimum share of agreeing predictions.")] = None,
    min_compared: Annotated[int | None, typer.Option(help="Compared mirrored answers for a verdict.")] = None,
    max_inconclusive: Annotated[int | None, typer.Option(help="Inconclusive analyses in a row before pausing.")] = None,
    config: Annotated[Path | None, typer.Option(help="conveyor.yaml with a rollout section.")] = None,
    detach: Annotated[bool, typer.Option(help="Run the controller in the background and return.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a rollout of REF: start its backend, shift traffic step by step, analyse, promote or roll back.

    \b
    conveyor rollout start sentiment:2 --steps 10,25,50,100 --interval 30s
    conveyor rollout start sentiment:2 --strategy blue-green --rollback-window 2m
    Exit codes: 0 promoted, 1 rolled back, 5 another rollout of the service is active.
    """
    from conveyor.rollout.config import load_settings

    with handle_errors():
        settings = load_settings(config)
        status = _new_status(
            ref, settings, service=service, router=router, strategy=strategy, steps=steps, interval=interval,
            rollback_window=rollback_window, contract=contract, no_contract=no_contract, image=image,
            command=command, thresholds={
                "min_requests": min_requests, "max_error_rate": max_error_rate,
                "max_error_rate_increase": max_error_rate_increase, "max_p99_ms": max_p99_ms,
                "max_p99_ratio": max_p99_ratio, "mirror_percent": mirror_percent, "min_agreement": min_agreement,
                "min_compared": min_compared, "max_inconclusive": max_inconclusive,
            },
        )  # fmt: skip
        _create_and_run(status, detach, as_json)


def _new_status(
    ref: str,
    settings: RolloutSettings,
    *,
    service: str | None = None,
    router: str | None = None,
    strategy: str | None = None,
    steps: str | None = None,
    interval: str | None = None,
    rollback_window: str | None = None,
    contract: Path | None = None,
    no_contract: bool = False,
    image: str | None = None,
    command: str | None = None,
    thresholds: dict[str, float | int | None] | None = None,
) -> RolloutStatus:
    from conveyor.durations import parse_duration
    from conveyor.rollout.analysis import MeasurementError
    from conveyor.rollout.config import parse_steps
    from conveyor.rollout.router_client import RouterClient
    from conveyor.rollout.status import Backend, RolloutStatus, StatusStore, router_address

    command = command or settings.command
    chosen_steps = parse_steps(steps) if steps else settings.steps  # validate the options before any work
    interval_s = parse_duration(interval or settings.interval)
    rollback_window_s = parse_duration(rollback_window or settings.rollback_window)
    serve_ref, version, model_name, model_version = _resolve(ref, allow_unregistered=bool(command or image))
    service = service or settings.service or model_name or ref.split(":")[0].split("@")[0]
    strategy = strategy or settings.strategy
    if strategy not in ("canary", "blue-green"):
        raise InvalidInput(f"--strategy must be canary or blue-green, not {strategy!r}")
    router_url = router or settings.router or router_address(service)
    if router_url is None:
        raise NotFound(f"no router for service {service!r}: start `conveyor router --service {service}`")
    limits = settings.thresholds.model_copy(update={k: v for k, v in (thresholds or {}).items() if v is not None})
    if (thresholds or {}).get(
        "mirror_percent"
    ) is None and "mirror_percent" not in settings.thresholds.model_fields_set:
        limits.mirror_percent = 20.0 if strategy == "canary" else 50.0
    contract_path = contract or (Path(settings.contract) if settings.contract else None)
    if contract_path is not None and not contract_path.exists():
        raise NotFound(f"contract {contract_path} does not exist")
    limits.contract = not no_contract
    store = StatusStore(service)
    client = RouterClient(router_url)
    try:
        stable = _stable_backend(store, client)
    except MeasurementError as exc:
        raise NotReady(str(exc)) from None
    finally:
        client.close()
    if stable.url is not None and stable.version == version:
        raise Conflict(f"{version} is already the stable version of service {service!r}")
    canary = Backend(ref=image or serve_ref, version=version, engine="container" if image else None)
    return RolloutStatus(
        service=service,
        strategy=strategy,  # type: ignore[arg-type]
        ref=serve_ref,
        model_name=model_name,
        model_version=model_version,
        router=router_url,
        steps=chosen_steps,
        interval_s=interval_s,
        rollback_window_s=rollback_window_s,
        stable=stable,
        canary=canary,
        command=None if image else command,
        contract_path=str(contract_path.resolve()) if contract_path else None,
        thresholds=limits,
        previous_ref=stable.ref or None,
    )


@app.command()
def controller(service: Annotated[str, typer.Argument(help="The service whose rollout to drive.")]) -> None:
    """Run the controller of SERVICE's active rollout (after a crash, or in the background)."""
    from conveyor.rollout.status import StatusStore

    with handle_errors():
        store = StatusStore(service)
        status = store.load()
        if not status.active:
            stdout.print(f"the rollout of {status.ref} is already {status.phase}")
            return
        _finish(_follow(store, as_json=False))


@app.command()
def status(
    service: ServiceArg = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until the rollout ends.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the rollout: step, weights, per-version traffic, agreement and analysis results."""
    from rich.live import Live

    from conveyor.rollout import view
    from conveyor.rollout.status import StatusStore

    with handle_errors():
        store = StatusStore(_pick_service(service))
        current = store.load()
        if as_json:
            print_json(current.model_dump(mode="json"))
            return
        if not watch:
            stdout.print(view.render(current, _stats(current), None))
            return
        previous = None
        with Live(console=stdout.rich(), refresh_per_second=2) as live:
            while True:
                current = store.load()
                now = _stats(current)
                live.update(view.render(current, now, previous))
                previous = now
                if not current.active:
                    break
                time.sleep(1.0)
        if not store.controller_running() and current.active:
            stderr.print("no controller is running for this rollout: `conveyor rollout controller SERVICE`")


def _command(service: str | None, action: Action, reason: str | None, wait: float) -> None:
    from conveyor.rollout.status import StatusStore

    with handle_errors():
        store = StatusStore(_pick_service(service))
        sent = store.command(action, reason)
        if not store.controller_running():
            _spawn_controller(store.service)
            stderr.print("no controller was running: started one in the background", highlight=False)
        deadline = time.monotonic() + wait
        current = store.load()
        while current.handled_command < sent.id and time.monotonic() < deadline:
            time.sleep(0.2)
            current = store.load()
        if current.handled_command < sent.id:
            raise fail(f"{action} recorded, but the controller has not acted on it after {wait:g}s", EXIT_FAILURE)
        if action == "abort":
            while current.active and time.monotonic() < deadline + 30:
                time.sleep(0.2)
                current = store.load()
        stdout.print(f"{current.phase} ({current.stage}): {current.message}", highlight=False)


ReasonOption = Annotated[str | None, typer.Option(help="Why: recorded in the rollout's events.")]
WaitOption = Annotated[float, typer.Option(help="Seconds to wait for the controller to act.")]


@app.command()
def promote(
    service: ServiceArg = None,
    full: Annotated[bool, typer.Option("--full", help="Skip every remaining step and analysis.")] = False,
    reason: ReasonOption = None,
    wait: WaitOption = 30.0,
) -> None:
    """Go to the next step now (blue-green: switch now), or with --full straight to 100%."""
    _command(service, "promote-full" if full else "promote", reason, wait)


@app.command()
def pause(service: ServiceArg = None, reason: ReasonOption = None, wait: WaitOption = 30.0) -> None:
    """Hold the current weights; no analysis runs until resume."""
    _command(service, "pause", reason, wait)


@app.command()
def resume(service: ServiceArg = None, reason: ReasonOption = None, wait: WaitOption = 30.0) -> None:
    """Continue a paused rollout with a fresh analysis window."""
    _command(service, "resume", reason, wait)


@app.command()
def abort(service: ServiceArg = None, reason: ReasonOption = None, wait: WaitOption = 30.0) -> None:
    """Roll back now: all traffic to stable, the canary stopped, the rollout marked aborted."""
    _command(service, "abort", reason, wait)


def _again(service: str | None, want: str, ref_of, detach: bool, as_json: bool, **overrides) -> None:  # type: ignore[no-untyped-def]
    from conveyor.rollout.config import RolloutSettings
    from conveyor.rollout.status import StatusStore

    with handle_errors():
        store = StatusStore(_pick_service(service))
        last = store.load()
        if last.phase != want:
            raise Conflict(f"the last rollout of {store.service!r} is {last.phase}, not {want}")
        ref = ref_of(last)
        if not ref:
            raise Conflict("the last rollout does not record a previous version to go back to")
        settings = RolloutSettings(
            strategy=overrides.get("strategy") or last.strategy,
            steps=last.steps,
            interval=last.interval_s,
            rollback_window=last.rollback_window_s,
            contract=last.contract_path,
            command=last.command,
            thresholds=last.thresholds,
        )
        image = last.canary.ref if last.canary.engine and want == "aborted" else None
        status = _new_status(
            ref, settings, service=store.service, router=last.router, steps=overrides.get("steps"), image=image
        )
        _create_and_run(status, detach, as_json)


DetachOption = Annotated[bool, typer.Option(help="Run the controller in the background and return.")]


@app.command()
def retry(service: ServiceArg = None, detach: DetachOption = False, as_json: JsonOption = False) -> None:
    """Roll out the same version again after an abort (same strategy, steps and thresholds)."""
    _again(service, "aborted", lambda last: last.ref, detach, as_json)


@app.command()
def undo(
    service: ServiceArg = None,
    strategy: Annotated[str | None, typer.Option(help="canary or blue-green [default: as last time].")] = None,
    steps: Annotated[str | None, typer.Option(help="Steps for the way back [default: as last time].")] = None,
    detach: DetachOption = False,
    as_json: JsonOption = False,
) -> None:
    """Roll back to the version that was stable before the last successful rollout."""
    _again(service, "succeeded", lambda last: last.previous_ref, detach, as_json, strategy=strategy, steps=steps)


@app.command()
def history(service: ServiceArg = None, as_json: JsonOption = False) -> None:
    """Past and current rollouts of a service."""
    from conveyor.rollout.status import StatusStore

    with handle_errors():
        store = StatusStore(_pick_service(service))
        rollouts = store.history() + ([store.find()] if store.find() else [])
        if as_json:
            print_json([r.model_dump(mode="json") for r in rollouts])
            return
        table = new_table(f"rollouts of {store.service}")
        for column in ("id", "ref", "strategy", "phase", "started", "took", "message"):
            table.add_column(column)
        for r in rollouts:
            took = f"{(r.finished_at or time.time()) - r.created_at:.0f}s"
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
            table.add_row(r.id, r.ref, r.strategy, r.phase, started, took, r.message)
        stdout.print(table)


@app.command()
def down(service: ServiceArg = None) -> None:
    """Stop the backends rollouts of SERVICE started, and take them and any dead backend off the router.

    The router keeps running (stop it yourself); the next `rollout start` begins from what is left."""
    from conveyor.rollout import backends
    from conveyor.rollout.analysis import MeasurementError
    from conveyor.rollout.router_client import RouterClient
    from conveyor.rollout.status import StatusStore

    with handle_errors():
        store = StatusStore(_pick_service(service))
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
        stdout.print(f"stopped: {', '.join(stopped)}" if stopped else "no running backend was started by a rollout")
        client = RouterClient(last.router)
        try:
            table = client.routes()
            gone = client.unhealthy_backends() | {b.name for b in table.backends if b.url in stopped_urls}
            if gone:
                client.set_routes(table.without(gone))
                stdout.print(f"removed from the router: {', '.join(sorted(gone))}")
        except MeasurementError as exc:
            stdout.print(f"the router was not changed: {exc}")
        finally:
            client.close()


@app.command("export")
def export_manifests(
    image: Annotated[str, typer.Option(help="The model-server image of the new version.")],
    fmt: Annotated[str, typer.Option("--format", help="argo-rollouts or kserve.")] = "argo-rollouts",
    name: Annotated[str | None, typer.Option(help="Kubernetes name [default: the rollout service].")] = None,
    steps: Annotated[str | None, typer.Option(help="Canary steps [default: conveyor.yaml or 10,25,50,100].")] = None,
    interval: Annotated[str | None, typer.Option(help="Pause per step [default: conveyor.yaml or 30s].")] = None,
    contract: Annotated[Path | None, typer.Option(help="Contract run by the analysis Job.")] = None,
    config: Annotated[Path | None, typer.Option(help="conveyor.yaml with a rollout section.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write; - for stdout.")] = Path("-"),
) -> None:
    """Write Kubernetes manifests for the same strategy: Argo Rollouts (+ AnalysisTemplate) or KServe."""
    from conveyor.durations import parse_duration
    from conveyor.rollout.config import load_settings, parse_steps
    from conveyor.rollout.export import export_argo_rollouts, export_kserve

    with handle_errors():
        settings = load_settings(config)
        chosen_steps = parse_steps(steps) if steps else settings.steps
        seconds = parse_duration(interval or settings.interval)
        app_name = name or settings.service or "model"
        contract_path = contract or (Path(settings.contract) if settings.contract else None)
        contract_text = contract_path.read_text() if contract_path else None
        if fmt == "argo-rollouts":
            text = export_argo_rollouts(app_name, image, chosen_steps, seconds, settings.thresholds, contract_text)
        elif fmt == "kserve":
            text = export_kserve(app_name, image, chosen_steps)
        else:
            raise InvalidInput(f"--format must be argo-rollouts or kserve, not {fmt!r}")
        if str(output) == "-":
            sys.stdout.write(text)
        else:
            output.write_text(text)
            stderr.print(f"wrote {output}", highlight=False)
