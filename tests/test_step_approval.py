"""The ``approval`` step type: a run waits for a person, who approves or rejects from elsewhere."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from conveyor.errors import Conflict
from conveyor.pipeline.decisions import decide
from conveyor.pipeline.github import workflow
from conveyor.pipeline.history import RunRecord, list_runs
from conveyor.pipeline.runner import Runner
from conveyor.pipeline.spec import Pipeline, load_project
from conveyor.registry.config import open_registry
from tests.registry_fixtures import run_cli
from tests.waiting import wait_for

PIPELINE = {
    "steps": {
        "train": {"run": "mkdir -p model && echo weights > model/model.bin"},
        "approve": {"uses": "approval", "needs": ["train"], "with": {"timeout": "60s", "environment": "production"}},
        "register": {
            "uses": "register",
            "needs": ["approve"],
            "with": {"path": "model", "name": "approved-model", "check": False},
        },
    }
}


@pytest.fixture
def project(tmp_path: Path, conveyor_home: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "conveyor.yaml").write_text(yaml.safe_dump({"pipelines": {"gated": PIPELINE}}))
    return root


def _start(project: Path, pipeline: dict | None = None) -> tuple[threading.Thread, dict[str, RunRecord]]:
    spec = Pipeline.model_validate(pipeline or PIPELINE)
    result: dict[str, RunRecord] = {}
    thread = threading.Thread(target=lambda: result.setdefault("run", Runner("gated", spec, project, {}).run()))
    thread.start()
    return thread, result


def _waiting_run(step: str = "approve") -> str:
    def waiting() -> str | None:
        runs = list_runs("gated")
        return runs[0].id if runs and runs[0].steps[step].status == "waiting" else None

    return wait_for(waiting, timeout=30, what=f"step {step!r} to wait for a decision")


def test_an_approved_run_registers_with_who_and_why_in_the_lineage(project: Path) -> None:
    thread, result = _start(project)
    run_id = _waiting_run()
    assert list_runs("gated")[0].steps["register"].status == "pending"  # nothing past the gate ran
    decide(run_id, "approve", approved=True, by="alice", reason="metrics look right")
    thread.join(60)
    record = result["run"]
    assert record.status == "success"
    assert record.step("approve").outputs["by"] == "alice"
    assert record.step("approve").outputs["reason"] == "metrics look right"
    version = open_registry().resolve("approved-model:1")
    assert [(a["step"], a["by"], a["reason"]) for a in version.lineage.approvals] == [
        ("approve", "alice", "metrics look right")
    ]


def test_a_rejected_run_fails_at_the_gate_and_registers_nothing(project: Path) -> None:
    thread, result = _start(project)
    run_id = _waiting_run()
    outcome = run_cli("pipeline", "reject", run_id, "approve", "--by", "bob", "--reason", "accuracy dropped")
    assert outcome.returncode == 0, outcome.stderr
    thread.join(60)
    record = result["run"]
    assert record.status == "failure"
    assert record.step("approve").status == "failure"
    assert "rejected by bob: accuracy dropped" in record.step("approve").message
    assert record.step("register").status == "skipped"
    assert open_registry().list_models() == []


def test_a_decision_is_refused_unless_the_step_waits_and_only_the_first_counts(project: Path) -> None:
    thread, _ = _start(project)
    run_id = _waiting_run()
    with pytest.raises(Conflict, match="train"):
        decide(run_id, "train", approved=True)
    decide(run_id, "approve", approved=True, by="alice")
    with pytest.raises(Conflict, match="already approved by alice"):
        decide(run_id, "approve", approved=False, by="mallory")
    thread.join(60)
    late = run_cli("pipeline", "approve", run_id, "approve")
    assert late.returncode == 5 and "not waiting" in late.stderr  # the CLI's exit code for a conflict


def test_nobody_deciding_fails_the_step_after_its_timeout(project: Path) -> None:
    pipeline = {"steps": {"approve": {"uses": "approval", "with": {"timeout": "1s"}}}}
    started = time.monotonic()
    thread, result = _start(project, pipeline)
    thread.join(60)
    assert result["run"].step("approve").status == "failure"
    assert "nobody approved 'approve' within 1s" in result["run"].step("approve").message
    assert time.monotonic() - started < 30


def test_a_resumed_run_finds_the_decision_made_on_the_run_it_resumes(project: Path) -> None:
    # The runner died while waiting: its record still says waiting; someone approves that run.
    (project / "model").mkdir()
    (project / "model" / "model.bin").write_text("weights")
    first = RunRecord.create("gated", {}, ["train", "approve", "register"])
    first.update_step("train", status="success")
    first.update_step("approve", status="waiting")
    first.finish("failure")
    decide(first.id, "approve", approved=True, by="carol", reason="approved while the runner was down")
    record = Runner("gated", Pipeline.model_validate(PIPELINE), project, {}).run(resume=first.id)
    assert record.status == "success", record.run.steps
    assert record.step("approve").outputs["by"] == "carol"


def test_in_a_github_workflow_the_gate_is_a_job_bound_to_an_environment(project: Path) -> None:
    spec = load_project(project / "conveyor.yaml").pipelines["gated"]
    jobs = workflow("gated", spec)["jobs"]
    assert jobs["approve"]["environment"] == {"name": "production"}
    assert "environment" not in jobs["train"] and "environment" not in jobs["register"]
    assert jobs["register"]["needs"] == ["approve"]


def test_a_run_record_is_typed_and_refuses_a_status_no_step_has(conveyor_home: Path) -> None:
    from pydantic import ValidationError

    from conveyor.pipeline.history import load_run

    record = RunRecord.create("gated", {"n": 1}, ["train", "register"], needs={"register": ["train"]})
    record.update_step("train", status="success", outputs={"model": "out/model"}, attempts=1)
    with pytest.raises(ValidationError, match="status"):
        record.update_step("register", status="sucess")
    again = load_run(record.id, "gated")
    assert again.step("train").outputs == {"model": "out/model"} and again.step("register").status == "pending"
    assert again.step("register").needs == ["train"] and again.status == "running"
