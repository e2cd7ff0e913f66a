"""``conveyor rollout``: blue-green and canary rollouts through the router, with analysis and rollback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from conveyor.rollout.status import Action, RolloutStatus, StatusStore

from conveyor.cli import rollout_export
from conveyor.cli.output import EXIT_FAILURE, handle_errors, new_table, print_json, stderr, stdout
from conveyor.cli.settings_options import spec_option_names, with_spec_options
from conveyor.cli.threshold_options import with_threshold_options
from conveyor.cli.trust import TrustedKeyOption
from conveyor.rollout.config import RolloutSettings

app = typer.Typer(
    rich_markup_mode=None,
    help="Blue-green and canary rollouts: traffic steps through `conveyor router`, analysis, promotion or rollback.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ServiceArg = Annotated[str | None, typer.Argument(help="The service (default: the only one with a rollout).")]


def _pick_service(service: str | None) -> str:
    from conveyor.rollout.plan import pick_service

    return pick_service(service)


def _follow(store: StatusStore, as_json: bool) -> RolloutStatus:
    """Run the controller here; draw the live view on a terminal, print each event otherwise."""
    from rich.live import Live

    from conveyor.cli import rollout_view as view
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
    from conveyor.rollout.analysis.run import MeasurementError
    from conveyor.rollout.router_client import RouterClient

    client = RouterClient(status.router, timeout=2)
    try:
        return client.stats()
    except MeasurementError:
        return None
    finally:
        client.close()


def _finish(status: RolloutStatus) -> None:
    from conveyor.cli import rollout_view as view

    colour = view.COLOURS.get(status.phase, "white")
    stdout.print(f"[{colour}]{status.phase}[/{colour}]: {status.message}", highlight=False)
    if status.phase == "aborted":
        raise typer.Exit(EXIT_FAILURE)


def _run(status: RolloutStatus, detach: bool, as_json: bool) -> None:
    """A rollout the service recorded: its controller is in the background (--detach) or runs here."""
    from conveyor.rollout.status import StatusStore

    if status.agreement_basis and not as_json:
        stdout.print(status.agreement_basis, highlight=False)
    if detach:
        stdout.print(f"rollout {status.id} of {status.ref} started; `conveyor rollout status {status.service} --watch`")
        return
    _finish(_follow(StatusStore(status.service), as_json))


@app.command()
@with_threshold_options
@with_spec_options(RolloutSettings, "rollout")
def start(
    ref: Annotated[str, typer.Argument(help="The new version: name:version or name@alias from the registry.")],
    no_contract: Annotated[bool, typer.Option("--no-contract", help="Skip the contract analysis.")] = False,
    image: Annotated[
        str | None, typer.Option(help="Run the new version from this image (podman/docker) instead of a process.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="conveyor.yaml with a rollout section.")] = None,
    detach: Annotated[bool, typer.Option(help="Run the controller in the background and return.")] = False,
    require_signed: Annotated[
        bool,
        typer.Option(
            "--require-signed",
            envvar="CONVEYOR_REQUIRE_SIGNED",
            help="Refuse a canary that no trusted key signed (the image's whole chain with --image), whatever "
            "the registry's policy says [default: conveyor.yaml's rollout.supply_chain.require].",
        ),
    ] = False,
    trusted_key: TrustedKeyOption = None,
    as_json: JsonOption = False,
    **options: str | float | int | None,
) -> None:
    """Start a rollout of REF: start its backend, shift traffic step by step, analyse, promote or roll back.

    \b
    conveyor rollout start sentiment:2 --steps 10,25,50,100 --interval 30s
    conveyor rollout start sentiment:2 --strategy blue-green --rollback-window 2m
    Exit codes: 0 promoted, 1 rolled back, 5 another rollout of the service is active.
    """
    from conveyor.rollout import service as rollouts

    with handle_errors():
        # the options of conveyor.yaml's rollout: section; the rest are thresholds
        spec: dict[str, Any] = {key: options.pop(key) for key in spec_option_names(RolloutSettings)}
        request = rollouts.StartRequest(
            ref, **spec, no_contract=no_contract, image=image, thresholds=options,
            require_signed=require_signed, trusted_keys=trusted_key or [],
        )  # fmt: skip
        _run(rollouts.start(request, config, background=detach), detach, as_json)


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

    from conveyor.cli import rollout_view as view
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


def _command(service: str | None, action: Action, reason: str | None, wait: float, weight: float | None = None) -> None:
    from conveyor.rollout import service as rollouts

    with handle_errors():
        request = rollouts.CommandRequest(action, service, reason, weight=weight, wait=wait)
        current = rollouts.command(request, on_notice=lambda text: stderr.print(text, highlight=False))
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
def weight(
    percent: Annotated[float, typer.Argument(help="The canary's share of live traffic, 0 to 100.", min=0, max=100)],
    service: ServiceArg = None,
    reason: ReasonOption = None,
    wait: WaitOption = 30.0,
) -> None:
    """Set the canary's traffic share by hand and pause there; resume or promote to go on."""
    _command(service, "weight", reason, wait, weight=percent)


@app.command()
def abort(service: ServiceArg = None, reason: ReasonOption = None, wait: WaitOption = 30.0) -> None:
    """Roll back now: all traffic to stable, the canary stopped, the rollout marked aborted."""
    _command(service, "abort", reason, wait)


DetachOption = Annotated[bool, typer.Option(help="Run the controller in the background and return.")]


@app.command()
def retry(service: ServiceArg = None, detach: DetachOption = False, as_json: JsonOption = False) -> None:
    """Roll out the same version again after an abort (same strategy, steps and thresholds)."""
    from conveyor.rollout import service as rollouts

    with handle_errors():
        _run(rollouts.retry(rollouts.RetryRequest(service), background=detach), detach, as_json)


@app.command()
def undo(
    service: ServiceArg = None,
    strategy: Annotated[str | None, typer.Option(help="canary or blue-green [default: as last time].")] = None,
    steps: Annotated[str | None, typer.Option(help="Steps for the way back [default: as last time].")] = None,
    detach: DetachOption = False,
    as_json: JsonOption = False,
) -> None:
    """Roll back to the version that was stable before the last successful rollout."""
    from conveyor.rollout import service as rollouts

    with handle_errors():
        request = rollouts.UndoRequest(service, strategy=strategy, steps=steps)
        _run(rollouts.undo(request, background=detach), detach, as_json)


@app.command()
def history(service: ServiceArg = None, as_json: JsonOption = False) -> None:
    """Past and current rollouts of a service."""
    from conveyor.rollout.status import StatusStore

    with handle_errors():
        store = StatusStore(_pick_service(service))
        current = store.find()
        rollouts = store.history() + ([current] if current is not None else [])
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
    from conveyor.rollout import service as rollouts

    with handle_errors():
        result = rollouts.down(service)
    stopped = result.stopped
    stdout.print(f"stopped: {', '.join(stopped)}" if stopped else "no running backend was started by a rollout")
    if result.removed:
        stdout.print(f"removed from the router: {', '.join(result.removed)}")
    if result.router_error:
        stdout.print(f"the router was not changed: {result.router_error}")


app.command("export")(rollout_export.export_manifests)
