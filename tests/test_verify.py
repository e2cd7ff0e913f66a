"""conveyor verify against the real server, deliberately broken servers, projects and reports."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
import yaml

from conveyor.registry.config import open_local
from tests.conftest import REPO, Server, free_port
from tests.registry_fixtures import run_cli
from tests.waiting import wait_for

VOTE_CONTRACT = {
    "sample_input": ["a good day"],
    "golden": [
        {"name": "positive", "input": ["good great"], "exact": {"positive": True}},
        {"name": "negative", "input": ["bad awful"], "field": "positive", "among": [False]},
        {
            "name": "v2-score",
            "protocol": "v2",
            "input": ["good"],
            "output": "probabilities",
            "index": 1,
            "within": [0.5, 1.0],
        },
    ],
    "latency": {"p95_ms": 2000, "concurrency": 4, "requests": 40},
    "v2": {"model": "votes"},
}


def write_contract(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def results_by_id(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


def verify(*args: str) -> tuple[int, dict]:
    result = run_cli("verify", *args, "--json")
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON report (exit {result.returncode}): {result.stdout}\n{result.stderr}") from None


def test_the_real_server_passes_every_check_and_junit_counts_them(served_vote: Server, tmp_path: Path) -> None:
    contract = write_contract(tmp_path / "contract.yaml", VOTE_CONTRACT)
    junit = tmp_path / "verify.xml"
    code, report = verify(served_vote.url, "--contract", str(contract), "--junit", str(junit))
    checks = results_by_id(report)
    assert code == 0, [c for c in report["checks"] if c["status"] != "passed"]
    assert report["ok"] is True
    for check_id in (
        "http.reachable",
        "route.endpoint",
        "parse.json_body",
        "predict.answers",
        "response.schema",
        "golden.positive",
        "golden.negative",
        "golden.v2-score",
        "errors.empty-list",
        "latency.p95",
        "v2.infer",
        "predict.batch_consistent",
    ):
        assert checks[check_id]["status"] == "passed", checks[check_id]
    layers = {c["layer"] for c in report["checks"]}
    assert {"http", "route", "parse", "predict", "response", "errors", "latency", "v2"} <= layers
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests")) == len(report["checks"]) == len(suite.findall("testcase"))
    assert int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0


@pytest.fixture
def broken(request: pytest.FixtureRequest):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.broken_server", request.param, str(port)], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(url + "/v2/health/ready", timeout=1), timeout=20, what="the broken server")
    yield url
    process.terminate()
    process.wait(10)


@pytest.mark.parametrize("broken", ["string_false"], indirect=True)
def test_a_string_false_fails_the_schema_check_with_a_clear_message(broken: str, tmp_path: Path) -> None:
    code, report = verify(broken)
    checks = results_by_id(report)
    assert code == 1
    assert checks["response.schema"]["status"] == "failed"
    assert checks["response.schema"]["message"] == '$.positive: expected boolean, got string "false"'
    assert checks["response.status"]["status"] == "passed", "HTTP-level checks alone would have missed it"


@pytest.mark.parametrize("broken", ["error500"], indirect=True)
def test_a_server_answering_500_fails_prediction_and_status(broken: str) -> None:
    code, report = verify(broken)
    checks = results_by_id(report)
    assert code == 1
    assert checks["response.status"]["status"] == "failed" and "got 500" in checks["response.status"]["message"]
    assert (
        checks["predict.answers"]["status"] == "failed" and "the model failed" in checks["predict.answers"]["message"]
    )
    assert checks["route.endpoint"]["status"] == "passed"


@pytest.mark.parametrize("broken", ["wrong_route"], indirect=True)
def test_a_server_on_the_wrong_route_fails_the_route_check(broken: str, tmp_path: Path) -> None:
    code, report = verify(broken)
    checks = results_by_id(report)
    assert code == 1
    assert checks["route.endpoint"]["status"] == "failed"
    assert "POST /predict answered 404: the route does not exist" in checks["route.endpoint"]["message"]
    assert checks["http.reachable"]["status"] == "passed"
    # pointed at the right route, the same server passes
    contract = {"endpoint": "/classify", "skip": ["v2.*"]}
    code, report = verify(broken, "--contract", str(write_contract(tmp_path / "classify.yaml", contract)))
    assert results_by_id(report)["route.endpoint"]["status"] == "passed"


@pytest.mark.parametrize("broken", ["html_errors"], indirect=True)
def test_html_error_pages_for_bad_input_fail_the_error_checks(broken: str) -> None:
    code, report = verify(broken)
    checks = results_by_id(report)
    assert code == 1
    for case in ("errors.malformed-json", "errors.empty-list", "errors.non-string-item"):
        assert checks[case]["status"] == "failed"
        assert "text/html, not a JSON error" in checks[case]["message"]
    assert checks["response.schema"]["status"] == "passed"


@pytest.mark.parametrize("broken", ["slow"], indirect=True)
def test_a_slow_server_fails_the_latency_objective(broken: str, tmp_path: Path) -> None:
    contract = write_contract(tmp_path / "c.yaml", {"latency": {"p95_ms": 50, "concurrency": 4, "requests": 12}})
    code, report = verify(broken, "--contract", str(contract))
    latency = results_by_id(report)["latency.p95"]
    assert code == 1
    assert latency["status"] == "failed"
    assert "exceeds the objective of 50 ms" in latency["message"]


def make_project(root: Path, requirements: str, code: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conveyor.yaml").write_text("project: demo\n")
    (root / "requirements.txt").write_text(requirements)
    (root / "app.py").write_text(code)
    return root


def test_static_checks_fail_unpinned_requirements_and_lint_findings(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "bad", "onnxruntime>=1.10\nflask\nnumpy==1.26.4\n", "import os\nimport sys\n\nprint(sys.argv)\n"
    )
    code, report = verify("--project", str(project))
    checks = results_by_id(report)
    assert code == 1
    assert checks["deps.pinned"]["status"] == "failed"
    assert "2 of 3 dependencies not pinned" in checks["deps.pinned"]["message"]
    assert "onnxruntime>=1.10" in checks["deps.pinned"]["message"] and "flask" in checks["deps.pinned"]["message"]
    assert checks["lint.ruff"]["status"] == "failed"
    assert "app.py:1: F401" in checks["lint.ruff"]["message"]


def test_static_checks_pass_a_pinned_clean_project(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "good",
        "onnxruntime==1.18.0 \\\n    --hash=sha256:" + "a" * 64 + "\nnumpy==1.26.4 --hash=sha256:" + "b" * 64 + "\n",
        "import sys\n\nprint(sys.argv)\n",
    )
    code, report = verify("--project", str(project))
    checks = results_by_id(report)
    assert code == 0, report
    assert checks["deps.pinned"]["message"] == "2 dependencies pinned exactly; all with hashes"
    assert checks["lint.ruff"]["status"] == "passed"


def test_model_digest_is_checked_against_the_registry(tmp_path: Path, conveyor_home: Path, vote_model: Path) -> None:
    open_local().register(vote_model, "votes")
    code, report = verify(
        "--model-ref", "votes:1", "--model-path", str(vote_model), "--skip", "deps.*", "--skip", "lint.*"
    )
    assert code == 0 and results_by_id(report)["model.digest"]["status"] == "passed"
    changed = tmp_path / "changed"
    changed.mkdir()
    for item in vote_model.iterdir():
        (changed / item.name).write_bytes(item.read_bytes())
    (changed / "model.yaml").write_text("name: votes\n")
    code, report = verify(
        "--model-ref", "votes:1", "--model-path", str(changed), "--skip", "deps.*", "--skip", "lint.*"
    )
    digest = results_by_id(report)["model.digest"]
    assert code == 1 and digest["status"] == "failed"
    assert "model.yaml: sha256" in digest["message"] and "differs from votes:1" in digest["message"]


def test_a_project_check_is_discovered_and_run(served_vote: Server, tmp_path: Path) -> None:
    project = make_project(tmp_path / "custom", "numpy==1.26.4\n", "print('ok')\n")
    (project / "conveyor_checks.py").write_text(
        "from conveyor.verify import CheckFailed, Context, check\n\n\n"
        '@check("team.knows_great", layer="predict")\n'
        "def knows_great(ctx: Context) -> str:\n"
        '    answer = ctx.post_json(["great"]).json()\n'
        '    if answer != {"positive": True}:\n'
        '        raise CheckFailed(f"great should be positive, got {answer}")\n'
        '    return "great is positive"\n'
    )
    code, report = verify(served_vote.url, "--project", str(project), "--skip", "v2.*")
    custom = results_by_id(report)["team.knows_great"]
    assert custom == {**custom, "status": "passed", "layer": "predict", "message": "great is positive"}
    assert code == 0


def test_write_contract_records_a_contract_that_then_passes(served_vote: Server, tmp_path: Path) -> None:
    path = tmp_path / "recorded.yaml"
    result = run_cli(
        "verify", served_vote.url, "--write-contract", str(path), "--example", "good good", "--example", "bad"
    )
    assert result.returncode == 0, result.stderr
    recorded = yaml.safe_load(path.read_text())
    assert recorded["golden"][0] == {
        "name": "example-1",
        "input": ["good good"],
        "exact": {"positive": True},
        "protocol": "classic",
        "index": 0,
    }
    assert recorded["response_schema"]["properties"] == {"positive": {"type": "boolean"}}
    assert {c["status"] for c in recorded["invalid"]} <= {400, 415, 422}
    code, report = verify(served_vote.url, "--contract", str(path), "--skip", "v2.*")
    assert code == 0, [c for c in report["checks"] if c["status"] != "passed"]


def test_verify_serves_a_model_folder_for_the_run(vote_model: Path) -> None:
    code, report = verify(
        str(vote_model), "--contract", str(write_contract(vote_model.parent / "vc.yaml", VOTE_CONTRACT))
    )
    checks = results_by_id(report)
    assert code == 0, [c for c in report["checks"] if c["status"] != "passed"]
    assert checks["v2.ready"]["status"] == "passed"


def test_a_contract_with_errors_is_refused_with_its_line(tmp_path: Path, served_vote: Server) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("golden:\n  - name: x\n    input: [a]\n    exact: {positive: true}\n    among: [1]\n")
    result = run_cli("verify", served_vote.url, "--contract", str(bad))
    assert result.returncode == 2 and "give exactly one of exact, among, within" in result.stderr
    bad.write_text("golden: [\n")
    result = run_cli("verify", served_vote.url, "--contract", str(bad))
    assert result.returncode == 2 and "line" in result.stderr and "not valid YAML" in result.stderr


def test_init_writes_a_project_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "my-model"
    result = run_cli("init", str(target))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in target.iterdir()} == {"conveyor.yaml", ".gitignore", "contract.yaml", "README.md", "tests"}
    assert "*.onnx" in (target / ".gitignore").read_text()
    project = yaml.safe_load((target / "conveyor.yaml").read_text())
    assert project["model"]["ref"] == "my-model"
    deliver = project["pipelines"]["deliver"]
    assert list(deliver["steps"]) == ["fetch", "lint", "tests", "contract", "build", "verify-image", "push", "stage"]
    assert deliver["params"]["image"] == "ghcr.io/{owner}/my-model"
    assert "CONVEYOR_TOKEN" in (target / "README.md").read_text()
    assert not (target / ".github").exists()  # workflows only with --ci github
    from conveyor.verify.contract import load_contract

    assert load_contract(target / "contract.yaml").golden[0].among == [True, False]
    again = run_cli("init", str(target))
    assert again.returncode == 5 and "--force" in again.stderr
    with_ci = run_cli(
        "init", str(tmp_path / "other"), "--name", "sentiment", "--ci", "github", "--image", "quay.io/a/b"
    )
    assert with_ci.returncode == 0, with_ci.stderr
    workflow = (tmp_path / "other" / ".github" / "workflows" / "conveyor-deliver.yml").read_text()
    assert 'uv pip install --python "$(command -v python)" conveyor-ml==' in workflow and "'quay.io/a/b'" in workflow
    assert run_cli("init", str(tmp_path / "third"), "--ci", "gitlab").returncode == 2


def test_recorded_golden_cases_expect_a_label_exactly_and_a_value_within_a_margin() -> None:
    from conveyor.verify.record import golden_case

    label = golden_case("a", {"age": 3}, {"label": "high", "probabilities": {"high": 0.8, "low": 0.2}})
    assert (label.field, label.exact) == ("label", "high")  # the probabilities may move between builds
    value = golden_case("b", {"age": 3}, [{"value": 200.0}])
    assert value.field == "0.value" and value.within == (199.8, 200.2)
    text = golden_case("c", "good", {"positive": True})
    assert text.field is None and text.exact == {"positive": True}
