"""Journey: a user's own project with an approval gate, and a training script using the Python API,
both with Conveyor installed from the wheel, from a folder outside the checkout."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

from tests.journeys.conftest import User, copy_model, wait_http
from tests.waiting import wait_for


def test_an_approval_gate_holds_the_run_until_someone_approves(user: User, vote_folder: Path) -> None:
    copy_model(vote_folder, user.workdir / "trained")
    (user.workdir / "conveyor.yaml").write_text(
        textwrap.dedent(
            """\
            pipelines:
              release:
                steps:
                  check: {run: "test -f trained/model.onnx"}
                  approve: {uses: approval, needs: [check], with: {timeout: 2m}}
                  register:
                    uses: register
                    needs: [approve]
                    with: {path: trained, name: votes, aliases: [staging]}
            """
        )
    )
    user.ok("pipeline", "validate")
    run = user.spawn("pipeline", "run", "release", name="pipeline")

    def waiting_run() -> str | None:
        runs = json.loads(user.ok("pipeline", "runs", "--json").stdout)
        return runs[0]["id"] if runs and runs[0]["steps"]["approve"]["status"] == "waiting" else None

    run_id = wait_for(waiting_run, timeout=60, what="the approval step to wait")
    assert user.run("models", "show", "votes").returncode == 4  # nothing registered before the decision
    early = user.run("pipeline", "approve", run_id, "register")
    assert early.returncode == 5 and "not waiting" in early.stderr
    approved = user.ok("pipeline", "approve", run_id, "approve", "--by", "alice", "--reason", "numbers look right")
    assert "approved by alice: numbers look right" in approved.stdout
    assert run.process.wait(120) == 0, run.log()
    shown = json.loads(user.ok("models", "show", "votes@staging", "--json").stdout)
    [approval] = shown["lineage"]["approvals"]
    assert (approval["step"], approval["by"], approval["reason"]) == ("approve", "alice", "numbers look right")
    workflow = user.ok("ci", "github", "release", "--out", ".github/workflows")
    assert workflow.returncode == 0
    text = (user.workdir / ".github/workflows/conveyor-release.yml").read_text()
    assert "environment:" in text and "name: approval" in text


def test_a_training_script_registers_and_promotes_with_the_python_api(user: User, vote_folder: Path) -> None:
    copy_model(vote_folder, user.workdir / "model")
    script = user.workdir / "train.py"
    script.write_text(
        textwrap.dedent(
            """\
            from pathlib import Path

            from conveyor import Lineage, ProgressBar, open_registry
            from conveyor.errors import Conflict, NotFound

            registry = open_registry()
            with ProgressBar() as bar:
                version = registry.register(Path("model"), "votes", lineage=Lineage(metrics={"accuracy": 0.9}),
                                            progress=bar)
            registry.set_alias("votes", "production", version.version, protect=True)
            second = registry.register(Path("model"), "votes")
            try:
                registry.set_alias("votes", "production", second.version)
            except Conflict as exc:
                print("refused:", exc)
            try:
                registry.resolve("votes:9")
            except NotFound as exc:
                print("missing:", exc)
            registry.download("votes@production", Path("copy"))
            print("registered", version.ref, sorted(p.name for p in Path("copy").iterdir()))
            """
        )
    )
    result = subprocess.run(
        [str(user.venv / "bin" / "python"), str(script)],
        capture_output=True,
        text=True,
        cwd=user.workdir,
        env=user.environ(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "registered votes:1 ['model.onnx', 'model.yaml', 'tokenizer.json']" in result.stdout
    assert "refused:" in result.stdout and "protected" in result.stdout
    assert "missing:" in result.stdout
    shown = json.loads(user.ok("models", "show", "votes@production", "--json").stdout)
    assert shown["version"] == 1 and shown["lineage"]["metrics"] == {"accuracy": 0.9}


def test_a_user_optimizes_a_version_and_the_gate_is_in_its_record(user: User, vote_folder: Path) -> None:
    copy_model(vote_folder, user.workdir / "model")
    user.ok("models", "register", "model", "--name", "votes", "--alias", "production")
    (user.workdir / "eval.txt").write_text("good great day\nbad awful food\ngood day\nham and eggs\nspam spam\n")
    result = user.run("models", "optimize", "votes@production", "--eval", "eval.txt", "--method", "int8",
                      "--no-measure", "--alias", "fast", "--json")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["registered"] == "votes:2" and report["candidates"][0]["agreement"] == 1.0
    shown = json.loads(user.ok("models", "show", "votes@fast", "--json").stdout)
    assert shown["lineage"]["optimized_from"] == "votes:1" and shown["properties"]["optimization"] == "int8"
    served = user.serve("votes@fast")
    answer = subprocess.run(
        ["curl", "-s", "-X", "POST", f"{served.url}/predict", "-H", "Content-Type: application/json",
         "-d", '["good great day"]'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(answer.stdout) == {"positive": True}
    missing = user.run("models", "optimize", "votes:9", "--eval", "eval.txt")
    assert missing.returncode == 4 and "votes" in missing.stderr and "Traceback" not in missing.stderr


def test_optimize_with_the_default_methods_runs_every_method_from_the_wheel(user: User, vote_folder: Path) -> None:
    """The fusions' own imports (sympy, for onnxruntime.transformers) come with the wheel: each method
    runs and says why it does not apply to this attention-free model, rather than failing to start."""
    copy_model(vote_folder, user.workdir / "model")
    user.ok("models", "register", "model", "--name", "votes")
    (user.workdir / "eval.txt").write_text("good great day\nbad awful food\ngood day\nham and eggs\n")
    result = user.run("models", "optimize", "votes:1", "--eval", "eval.txt", "--no-measure", "--dry-run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["skipped"]["fused"] == "no transformer attention the optimizer recognizes"
    assert report["skipped"]["fused-int8-smooth"] == "no transformer attention the optimizer recognizes"
    assert report["chosen"] == "int8" and report["registered"] is None


def test_the_dashboard_from_the_wheel_shows_the_registry_and_guards_its_buttons(user: User, vote_folder: Path) -> None:
    import httpx

    from tests.conftest import free_port

    copy_model(vote_folder, user.workdir / "model")
    user.ok("models", "register", "model", "--name", "votes", "--alias", "production")
    secret = json.loads(user.ok("registry", "token", "create", "ops", "--scope", "write", "--json").stdout)["token"]
    port = free_port()
    ui = user.spawn("ui", "--port", str(port), name="ui")
    url = ui.url = f"http://127.0.0.1:{port}"
    wait_http(ui, "/healthz")
    models = httpx.get(url + "/models", timeout=5)
    assert models.status_code == 200 and 'data-model="votes"' in models.text and "@production" in models.text
    assert httpx.get(url + "/static/htmx-2.0.11.min.js", timeout=5).status_code == 200  # vendored in the wheel
    version = httpx.get(url + "/models/votes/versions/1", timeout=5).text
    shown = json.loads(user.ok("models", "show", "votes:1", "--json").stdout)
    assert shown["digest"] in version
    missing = httpx.get(url + "/models/votes/versions/9", headers={"accept": "application/json"}, timeout=5)
    assert missing.status_code == 404 and "votes:9" in missing.json()["error"]
    forged = httpx.post(url + "/rollouts/votes/actions/abort", data={"csrf": "x"}, timeout=5)
    assert forged.status_code == 403, ui.log()
    with httpx.Client(base_url=url, timeout=5) as browser:
        assert 'id="login-link"' in browser.get("/models").text  # the registry keeps tokens: a login is offered
        forged_login = browser.post("/login", data={"token": secret, "next": "/models"})
        assert forged_login.status_code == 403 and "reload the page" in forged_login.text  # no CSRF field
        form = browser.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, "the login form has no CSRF field"
        login = browser.post("/login", data={"token": secret, "next": "/models", "csrf": csrf.group(1)})
        assert login.status_code == 303 and login.headers["location"] == "/models"
        assert "ops (write)" in browser.get("/models").text and secret not in browser.get("/models").text
    ui.process.terminate()
    assert ui.process.wait(20) is not None
