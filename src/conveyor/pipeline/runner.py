"""The local pipeline runner: a DAG of steps, each in its own process (its own failure domain).

Independent steps run in parallel (up to ``max_parallel``); a failed step stops only the steps
that need it; each step has a timeout (its whole process group is killed), retries with
doubling backoff, optional caching by a key of its resolved inputs, outputs passed to later
steps, and ``if`` conditions.  Every run is recorded (see ``history``) and can be resumed
from its failed step.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import ClientError, InvalidInput
from conveyor.pipeline.expressions import Evaluator, condition, substitute
from conveyor.pipeline.history import DONE, SUCCEEDED, RunRecord, list_runs, load_run, now_iso
from conveyor.pipeline.spec import Pipeline, Step
from conveyor.pipeline.step_types import step_types

Listener = Callable[[str, str, str], None]  # (step, status, message)


@dataclass
class StepResult:
    status: str
    exit_code: int | None
    outputs: dict[str, Any]
    message: str
    attempts: int


def resolve_params(pipeline: Pipeline, overrides: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(pipeline.params))
    if unknown:
        raise InvalidInput(f"unknown parameter(s) {unknown}; this pipeline takes {sorted(pipeline.params)}")
    params = {name: _expand_owner(p.default) for name, p in pipeline.params.items()}
    for name, text in overrides.items():
        params[name] = _coerce(name, text, params[name])
    return params


def _expand_owner(default: Any) -> Any:
    """``{owner}`` in a default (``ghcr.io/{owner}/NAME``): the GitHub repository owner in CI, else ``local``."""
    if isinstance(default, str) and "{owner}" in default:
        owner = os.environ.get("GITHUB_REPOSITORY_OWNER") or "local"
        return default.replace("{owner}", owner.lower())  # image names are lower case
    return default


def _coerce(name: str, text: str, default: Any) -> Any:
    """A --param value takes the type of the parameter's default."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise InvalidInput(f"parameter {name}: {text!r} is not a {type(default).__name__}") from None
    return text


def _is_bytecode(path: Path) -> bool:
    """Python's own cache: written when a step imports the code, so never an input of the step."""
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def _hash_paths(project: Path, paths: list[str]) -> str:
    digest = hashlib.sha256()
    for pattern in sorted(paths):
        target = project / pattern
        if target.is_dir():
            files = sorted(p for p in target.rglob("*") if p.is_file() and not _is_bytecode(p.relative_to(target)))
        else:
            files = [target]
        for file in files:
            digest.update(str(file.relative_to(project) if file.is_relative_to(project) else file).encode())
            digest.update(file.read_bytes() if file.is_file() else b"<missing>")
    return digest.hexdigest()


class Runner:
    def __init__(
        self, name: str, pipeline: Pipeline, project: Path, params: dict[str, Any], listener: Listener | None = None
    ) -> None:
        self.name = name
        self.pipeline = pipeline
        self.project = project.resolve()
        self.params = params
        self.listener = listener or (lambda step, status, message: None)
        self._only: set[str] | None = None

    # ---- context ----------------------------------------------------------------------------

    def _context(self, record: RunRecord) -> dict[str, Any]:
        steps = {name: {"outputs": state.outputs, "outcome": state.status} for name, state in record.run.steps.items()}
        return {
            "params": self.params,
            "steps": steps,
            "run": {"id": record.id, "artifacts": str(record.artifacts), "pipeline": self.name},
            "env": dict(os.environ),
        }

    def _cache_key(self, step: Step, resolved: dict[str, Any]) -> str | None:
        if step.cache is False:
            return None
        paths = step.cache.paths if not isinstance(step.cache, bool) else []
        material = json.dumps(
            {"step": resolved, "paths": _hash_paths(self.project, paths)}, sort_keys=True, default=str
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def _cached(self, step_name: str, key: str) -> dict[str, Any] | None:
        for run in list_runs(self.name):
            state = run.steps.get(step_name)
            if state and state.cache_key == key and state.status in SUCCEEDED:
                return {"outputs": state.outputs, "run": run.id}
        return None

    # ---- running ----------------------------------------------------------------------------

    def run(self, resume: str | None = None, only: list[str] | None = None, state: Path | None = None) -> RunRecord:
        """Run the pipeline (or, with ``only``, just those steps).

        ``state`` is a folder that carries step results between separate invocations, as CI
        jobs on different machines do: ``state/steps/STEP.json`` and ``state/artifacts/``.
        """
        previous = load_run(resume, self.name) if resume else None
        unknown = sorted(set(only or []) - set(self.pipeline.steps))
        if unknown:
            raise InvalidInput(f"no step(s) {unknown} in pipeline {self.name!r}")
        artifacts = previous.artifacts if previous else (state / "artifacts" if state else None)
        record = RunRecord.create(
            self.name,
            self.params,
            list(self.pipeline.steps),
            artifacts=artifacts,
            resumed_from=previous.id if previous else None,
            needs={name: list(step.needs) for name, step in self.pipeline.steps.items()},
        )
        self._only = set(only) if only else None
        if state is not None:
            for path in sorted((state / "steps").glob("*.json")):
                if path.stem in self.pipeline.steps and path.stem not in (self._only or set()):
                    record.update_step(path.stem, **json.loads(path.read_text()))
        if previous:
            for name, earlier in previous.run.steps.items():
                if name in self.pipeline.steps and earlier.status in SUCCEEDED:
                    record.update_step(
                        name,
                        status="cached",
                        outputs=earlier.outputs,
                        message=f"reused from run {previous.id}",
                    )
                    self.listener(name, "cached", f"reused from run {previous.id}")
        futures: dict[Future[StepResult], str] = {}
        with ThreadPoolExecutor(max_workers=self.pipeline.max_parallel) as pool:
            while True:
                self._schedule(record, pool, futures)
                if not futures:
                    break
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    name = futures.pop(future)
                    result = future.result()
                    record.update_step(
                        name,
                        status=result.status,
                        exit_code=result.exit_code,
                        outputs=result.outputs,
                        message=result.message,
                        attempts=result.attempts,
                        ended_at=now_iso(),
                    )
                    self.listener(name, result.status, result.message)
        for name in self._only or []:
            if record.step(name).status == "pending":
                missing = [n for n in self.pipeline.steps[name].needs if record.step(n).status == "pending"]
                message = f"no result for needed step(s) {missing}: run them first (--state carries results)"
                record.update_step(name, status="failure", message=message)
                self.listener(name, "failure", message)
        if state is not None:
            (state / "steps").mkdir(parents=True, exist_ok=True)
            for name in self._only or self.pipeline.steps:
                (state / "steps" / f"{name}.json").write_text(record.step(name).model_dump_json(fallback=str))
        considered = [record.step(n) for n in (self._only or self.pipeline.steps)]
        failed = any(s.status == "failure" for s in considered)
        record.finish("failure" if failed else "success")
        return record

    def _schedule(self, record: RunRecord, pool: ThreadPoolExecutor, futures: dict[Future[StepResult], str]) -> None:
        running = set(futures.values())
        changed = True
        while changed:  # skipping a step can make its dependants decidable at once
            changed = False
            for name, step in self.pipeline.steps.items():
                state = record.step(name)
                if state.status != "pending" or name in running:
                    continue
                if self._only is not None and name not in self._only:
                    continue  # another invocation (a CI job) runs it
                outcomes: list[str] = [record.step(n).status for n in step.needs]
                if any(o not in DONE for o in outcomes):
                    continue
                evaluator = Evaluator(self._context(record), outcomes)
                try:
                    go, reason, resolved = self._decide(step, evaluator, outcomes, record)
                except ClientError as exc:  # a broken expression fails its step, not the runner
                    record.update_step(name, status="failure", message=exc.message)
                    self.listener(name, "failure", exc.message)
                    changed = True
                    continue
                if not go:
                    record.update_step(name, status="skipped", message=reason)
                    self.listener(name, "skipped", reason)
                    changed = True
                    continue
                key = self._cache_key(step, resolved)

                if key and (hit := self._cached(name, key)):
                    record.update_step(
                        name,
                        status="cached",
                        outputs=hit["outputs"],
                        cache_key=key,
                        message=f"inputs unchanged since run {hit['run']}",
                    )
                    self.listener(name, "cached", f"inputs unchanged since run {hit['run']}")
                    changed = True
                    continue
                waits = step.uses is not None and step_types()[step.uses].waits_for_decision
                status = "waiting" if waits else "running"
                note = f"waiting for a decision: conveyor pipeline approve {record.id} {name} (or reject)"
                note = note if waits else ""
                record.update_step(name, status=status, started_at=now_iso(), cache_key=key, message=note)
                self.listener(name, status, note)
                futures[pool.submit(self._execute, record, name, step, resolved)] = name
                running.add(name)

    def _decide(
        self, step: Step, evaluator: Evaluator, outcomes: list[str], record: RunRecord
    ) -> tuple[bool, str, dict[str, Any]]:
        """Whether the step runs (its ``if``, else: every needed step succeeded), why not, and its inputs."""
        if step.if_ is not None:
            go = condition(step.if_, evaluator)
            reason = f"condition {step.if_!r} is false"
        else:
            go = all(o in SUCCEEDED for o in outcomes)
            reason = "a needed step did not succeed: " + ", ".join(
                f"{n} {record.step(n).status}" for n in step.needs if record.step(n).status not in SUCCEEDED
            )
        return go, reason, self._resolve(step, evaluator) if go else {}

    def _resolve(self, step: Step, evaluator: Evaluator) -> dict[str, Any]:
        return {
            "kind": step.kind,
            "action": step.uses or step.run or step.python,
            "with": substitute(step.with_, evaluator),
            "run": substitute(step.run, evaluator) if step.run else None,
            "env": {k: str(v) for k, v in substitute(step.env, evaluator).items()},
        }

    def _command(self, record: RunRecord, name: str, resolved: dict[str, Any], payload: Path) -> list[str]:
        if resolved["kind"] == "run":
            return ["bash", "-eo", "pipefail", "-c", resolved["run"]]
        payload.write_text(
            json.dumps(
                {
                    "function": resolved["action"],
                    "builtin": resolved["kind"] == "uses",
                    "with": resolved["with"],
                    "params": self.params,
                    "run_id": record.id,
                    "step": name,
                    "artifacts": str(record.artifacts),
                    "project": str(self.project),
                    "timeout": self.pipeline.steps[name].timeout,
                },
                default=str,
            )
        )
        return [sys.executable, "-m", "conveyor.pipeline.execute", str(payload)]

    def _execute(self, record: RunRecord, name: str, step: Step, resolved: dict[str, Any]) -> StepResult:
        log_path = record.log_path(name)
        message = ""
        code: int | None = None
        for attempt in range(1, step.retries + 2):
            if attempt > 1:
                delay = step.retry_backoff * 2 ** (attempt - 2)
                self.listener(name, "running", f"retry {attempt - 1}/{step.retries} in {delay:g}s")
                time.sleep(delay)
            with tempfile.TemporaryDirectory(prefix="conveyor-step-") as tmp:
                output_file = Path(tmp) / "outputs"
                output_file.touch()
                command = self._command(record, name, resolved, Path(tmp) / "payload.json")
                env = {
                    **os.environ,
                    **resolved["env"],
                    "CONVEYOR_RUN_ID": record.id,
                    "CONVEYOR_STEP": name,
                    "CONVEYOR_ARTIFACTS": str(record.artifacts),
                    "CONVEYOR_OUTPUT": str(output_file),
                    "CONVEYOR_PIPELINE": self.name,
                    "PYTHONUNBUFFERED": "1",
                    # `python`, `conveyor` and `ruff` in steps are this environment's
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                }
                with open(log_path, "a") as log:
                    log.write(f"--- attempt {attempt} at {now_iso()}: {' '.join(command[:6])}\n")
                    log.flush()
                    code, message = self._run_process(command, env, log, step.timeout)
                outputs = _read_outputs(output_file)
            record.update_step(name, attempts=attempt)
            if code == 0:
                return StepResult("success", 0, outputs, message or f"done in attempt {attempt}", attempt)
        return StepResult("failure", code, {}, message, step.retries + 1)

    def _run_process(self, command: list[str], env: dict[str, str], log: Any, timeout: float) -> tuple[int, str]:
        process = subprocess.Popen(
            command, cwd=self.project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            log.write(f"--- timed out after {timeout:g}s: process group killed\n")
            return -1, f"timed out after {timeout:g}s"
        if code != 0:
            return code, f"exited with {code}: {_last_line(log.name)}"
        return 0, ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _last_line(path: str) -> str:
    try:
        lines = [
            ln
            for ln in Path(path).read_text(errors="replace").splitlines()
            if ln.strip() and not ln.startswith("--- attempt")
        ]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _read_outputs(path: Path) -> dict[str, Any]:
    """``key=value`` lines (like $GITHUB_OUTPUT); values that are JSON are decoded."""
    outputs: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            continue
        try:
            outputs[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            outputs[key.strip()] = value
    return outputs
