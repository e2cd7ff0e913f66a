"""``conveyor pipeline``: validate, run, list runs and show logs of the pipelines in conveyor.yaml."""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from conveyor.pipeline.history import RunRecord

from conveyor.cli.output import EXIT_FAILURE, fail, handle_errors, new_table, print_json, stderr, stdout

app = typer.Typer(
    rich_markup_mode=None, help="Pipelines declared in conveyor.yaml: run locally, with history.", no_args_is_help=True
)
FileOption = Annotated[Path, typer.Option("--file", "-f", help="The project file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
STYLES = {
    "pending": "dim",
    "running": "cyan",
    "waiting": "magenta",
    "success": "green",
    "failure": "red",
    "skipped": "yellow",
    "cached": "blue",
}


@app.command("list")
def list_pipelines(file: FileOption = Path("conveyor.yaml"), as_json: JsonOption = False) -> None:
    """List the pipelines with their steps and triggers."""
    from conveyor.pipeline.spec import load_project, topological_order

    with handle_errors():
        project = load_project(file)
    if as_json:
        print_json({name: p.model_dump(mode="json", by_alias=True) for name, p in project.pipelines.items()})
        return
    table = new_table(str(file))
    for column in ("pipeline", "steps (in order)", "triggers", "params"):
        table.add_column(column)
    for name, pipeline in project.pipelines.items():
        table.add_row(
            name,
            " -> ".join(topological_order(pipeline.steps)),
            ", ".join(t.kind for t in pipeline.triggers),
            ", ".join(f"{k}={p.default}" for k, p in pipeline.params.items()),
        )
    stdout.print(table)


@app.command("validate")
def validate(file: FileOption = Path("conveyor.yaml")) -> None:
    """Check conveyor.yaml: errors point at the line."""
    from conveyor.pipeline.spec import load_project

    with handle_errors():
        project = load_project(file)
    stdout.print(f"{file}: {len(project.pipelines)} pipeline(s) valid: {', '.join(project.pipelines)}")


def _table(name: str, states: dict[str, dict], started: float) -> Table:
    table = new_table(f"pipeline {name}  {time.monotonic() - started:.0f}s")
    for column in ("step", "status", "attempts", "message"):
        table.add_column(column)
    for step, state in states.items():
        style = STYLES.get(state["status"], "")
        table.add_row(
            step,
            f"[{style}]{state['status']}[/{style}]",
            str(state.get("attempts") or ""),
            state.get("message", "")[:100],
        )
    return table


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The pipeline to run.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Override a parameter: key=value.")] = None,
    resume: Annotated[str | None, typer.Option(help="Resume this run: reuse its successful steps.")] = None,
    step: Annotated[
        list[str] | None, typer.Option("--step", help="Run only this step (repeatable), as a CI job does.")
    ] = None,
    state: Annotated[Path | None, typer.Option(help="Folder carrying step results between --step invocations.")] = None,
    file: FileOption = Path("conveyor.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline: independent steps in parallel, live status, recorded history. Exit 1 if a step failed."""
    from rich.live import Live

    from conveyor.pipeline.runner import Runner, resolve_params
    from conveyor.pipeline.spec import get_pipeline, load_project, topological_order

    overrides = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--param {item!r} must look like key=value")
        overrides[key] = value
    with handle_errors():
        project = load_project(file)
        pipeline = get_pipeline(project, name, file)
        params = resolve_params(pipeline, overrides)
    states = {
        name: {"status": "pending", "message": ""}
        for name in topological_order(pipeline.steps)
        if not step or name in step
    }
    lock = threading.Lock()
    live_view = interactive() and not as_json

    def listener(name: str, status: str, message: str) -> None:
        with lock:
            states.setdefault(name, {}).update(status=status, message=message)
        if not live_view and not as_json:
            stdout.print(f"{name:<20} {status:<8} {message}", highlight=False)

    runner = Runner(name, pipeline, file.resolve().parent, params, listener)
    started = time.monotonic()
    with handle_errors():
        if live_view:
            # the runner works in a thread while this one redraws; whatever it raises is raised
            # again here by result(), so a terminal gets the same error line and exit code as a log
            with ThreadPoolExecutor(max_workers=1) as pool:
                running = pool.submit(runner.run, resume, step, state)
                with Live(_table(name, states, started), refresh_per_second=4, console=stdout.rich()) as live:
                    while not running.done():
                        with lock:
                            live.update(_table(name, states, started))
                        time.sleep(0.25)
                    if running.exception() is None:
                        final = running.result().run.steps
                        live.update(_table(name, {s: v.model_dump() for s, v in final.items()}, started))
            record = running.result()
        else:
            record = runner.run(resume, step, state)
    if as_json:
        print_json(record.run.model_dump(mode="json"))
    else:
        stdout.print(
            f"run {record.id}: {record.status} (logs: conveyor pipeline logs {record.id} [STEP])",
            highlight=False,
        )
    if record.status != "success":
        raise typer.Exit(EXIT_FAILURE)


def interactive() -> bool:
    """Whether to redraw a live table: a person's terminal, not a CI log.

    CI runners (GitHub Actions, act, GitLab: $CI) may hand a step a pseudo-terminal, where cursor
    codes would land in the log and the table be printed again and again; there, and on a dumb
    terminal, each step's change is one plain line, printed once."""
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    return sys.stdout.isatty() and not ci and os.environ.get("TERM") != "dumb"


def _decide(run_id: str, step: str, approved: bool, by: str | None, reason: str, as_json: bool) -> None:
    from conveyor.pipeline.decisions import decide

    with handle_errors():
        decision = decide(run_id, step, approved=approved, by=by, reason=reason)
    if as_json:
        print_json(decision.as_dict())
        return
    verdict = "approved" if approved else "rejected"
    why = f": {reason}" if reason else ""
    stdout.print(f"{step} of run {run_id} {verdict} by {decision.by}{why}", highlight=False)


RunArgument = Annotated[str, typer.Argument(help="The run id (conveyor pipeline runs lists them).")]
StepArgument = Annotated[str, typer.Argument(help="The waiting step.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who decides (default: the current user).")]


ReasonOption = Annotated[str, typer.Option("--reason", "-m", help="Why (kept in the run history and lineage).")]


@app.command("approve")
def approve(
    run_id: RunArgument, step: StepArgument, by: ByOption = None, reason: ReasonOption = "", as_json: JsonOption = False
) -> None:
    """Approve a step that waits for a decision (an approval step): the run goes on."""
    _decide(run_id, step, True, by, reason, as_json)


@app.command("reject")
def reject(
    run_id: RunArgument, step: StepArgument, by: ByOption = None, reason: ReasonOption = "", as_json: JsonOption = False
) -> None:
    """Reject a step that waits for a decision: it fails, and so do the steps that need it."""
    _decide(run_id, step, False, by, reason, as_json)


@app.command("runs")
def runs(
    name: Annotated[str | None, typer.Argument(help="Only this pipeline's runs.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The run history: newest first, with durations and outcome."""
    from conveyor.pipeline.history import list_runs

    history = list_runs(name)[:limit]
    if as_json:
        print_json([run.model_dump(mode="json") for run in history])
        return
    table = new_table("pipeline runs")
    for column in ("run", "pipeline", "status", "started", "duration", "steps"):
        table.add_column(column)
    for run in history:
        counts: dict[str, int] = {}
        for state in run.steps.values():
            counts[state.status] = counts.get(state.status, 0) + 1
        table.add_row(
            run.id,
            run.pipeline,
            run.status,
            run.started_at[:19],
            _duration(run.started_at, run.ended_at),
            ", ".join(f"{n} {s}" for s, n in counts.items()),
        )
    stdout.print(table)


def _duration(started: str | None, ended: str | None) -> str:
    from datetime import datetime

    if not started or not ended:
        return "-"
    seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    return f"{seconds:.1f}s"


@app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    step: Annotated[str | None, typer.Argument(help="One step's log (default: all, in order).")] = None,
) -> None:
    """Print what the steps of a run printed."""
    from conveyor.pipeline.history import load_run

    with handle_errors():
        record = load_run(run_id)
        steps = [step] if step else list(record.run.steps)
        if step and step not in record.run.steps:
            raise fail(f"run {run_id} has no step {step!r}", 4)
    for name in steps:
        path = record.log_path(name)
        state = record.step(name)
        took = _duration(state.started_at, state.ended_at)
        stdout.print(f"[bold]== {name}: {state.status} ({took}) {state.message}[/bold]", highlight=False)
        if path.is_file():
            sys.stdout.write(path.read_text(errors="replace"))
            sys.stdout.flush()


@app.command("watch")
def watch(
    file: FileOption = Path("conveyor.yaml"),
    port: Annotated[int, typer.Option(help="Loopback port for the registry's webhook (0: any free one).")] = 0,
    once: Annotated[
        bool, typer.Option("--once", help="Exit after the first triggered run (exit code = its outcome).")
    ] = False,
) -> None:
    """Run pipelines with model_version / alias triggers whenever the registry announces one (a webhook,
    no polling), pipelines with drift triggers when the served version's traffic drifts, and pipelines
    with mlflow triggers on each new MLflow model version, imported first (both checked every
    trigger's `every`; MLflow at once too, by its own webhook where the server has them).  SIGTERM
    and SIGINT (Ctrl-C) remove the watch's webhooks."""
    import queue as queue_module
    import signal

    from conveyor.pipeline.mlflow_watch import MLFLOW_EVENTS_PATH, register_webhooks, unregister_webhooks
    from conveyor.pipeline.spec import load_project
    from conveyor.pipeline.watch import Watcher, describe
    from conveyor.registry.config import open_registry
    from conveyor.registry.local import LocalRegistry

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM ends the watch as Ctrl-C does: its webhooks are removed

    # SIGINT too: a watch started in the background by a script (`watch &`, nohup) inherits it ignored,
    # and Python then installs no Ctrl-C handler of its own
    before = {signum: signal.signal(signum, interrupted) for signum in (signal.SIGTERM, signal.SIGINT)}
    hooked: tuple[LocalRegistry, str] | None = None  # the registry the webhook was added to, and its URL
    mlflow_hooks: list[tuple[str, str]] = []  # (tracking server, webhook id)
    watcher: Watcher | None = None
    stop_polling = threading.Event()
    poller: threading.Thread | None = None
    warn = lambda text: stderr.print(f"warning: {text}", highlight=False)  # noqa: E731
    outcome = 0
    try:  # from the first webhook on: a signal at any point removes what was registered
        with handle_errors():
            project = load_project(file)
            registry = open_registry()

            def report(name: str, record: RunRecord) -> None:
                stdout.print(f"pipeline {name} run {record.id}: {record.status}", highlight=False)

            watcher = Watcher(project.pipelines, file.resolve().parent, report)
            if watcher.needs_webhook:
                if not isinstance(registry, LocalRegistry):
                    raise fail(
                        "watch registers a webhook in the registry's database: run it where CONVEYOR_REGISTRY is the "
                        "database or folder (for a registry server, add a webhook with `conveyor registry webhook add`)"
                    )
                url = watcher.start(port=port)
                registry.webhooks.add(url, watcher.secret)
                hooked = (registry, url)
                names = ", ".join(watcher.pipelines)
                stdout.print(f"watching for new versions for {names}: webhook {url}", highlight=False)
            if watcher.mlflow_triggers():
                url = watcher.url() if watcher.server is not None else watcher.start(port=port)
                base = url.rsplit("/", 1)[0]
                events_url = base + MLFLOW_EVENTS_PATH
                mlflow_hooks = register_webhooks(watcher.mlflow_triggers(), events_url, watcher.secret, warn)
                for server, _ in mlflow_hooks:
                    stdout.print(f"MLflow at {server} calls {events_url} on new versions", highlight=False)
            polled = watcher.polled_triggers()
            for trigger in polled:
                stdout.print(f"watching {describe(trigger)}", highlight=False)
            if polled:
                poller = threading.Thread(
                    target=watcher.poll,
                    args=(stop_polling, lambda text: stdout.print(text, highlight=False), warn),
                    daemon=True,
                )
                poller.start()
        assert watcher is not None
        while True:
            try:
                event = watcher.events.get(timeout=0.5)
            except queue_module.Empty:
                continue
            found = (
                f" ({', '.join(event.get('drifted') or ['live quality'])}; report {event['report']})"
                if event.get("report")
                else ""
            )
            stdout.print(
                f"event {event.get('type')} {event.get('model')}:{event.get('version')}{found}", highlight=False
            )
            with handle_errors():
                ran = watcher.handle(event)
            if ran and once:
                outcome = 0 if all(r.status == "success" for _, r in ran) else EXIT_FAILURE
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop_polling.set()
        if poller is not None:
            # let a poll that is under way finish: a process that exits while a thread is inside
            # native code (a drift statistic, a model session) can abort in its C++ teardown
            # ("terminate called without an active exception") instead of exiting with its outcome
            poller.join(timeout=60)
        if watcher is not None:
            watcher.stop()
        if hooked is not None:
            local, url = hooked
            local.webhooks.remove(url)
        unregister_webhooks(mlflow_hooks, warn)
        for signum, handler in before.items():
            signal.signal(signum, handler)
    raise typer.Exit(outcome)
