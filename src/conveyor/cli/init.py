"""``conveyor init``: a new delivery project skeleton."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import EXIT_CONFLICT, EXIT_NOT_FOUND, fail, handle_errors, stdout
from conveyor.registry.refs import check_name
from conveyor.task_kinds import Task

GITIGNORE = """\
# Model weights and data never go into git: they live in the registry.
*.onnx
*.onnx.data
*.safetensors
*.bin
*.pt
*.pth
*.ckpt
*.h5
models/
data/
# Local state
.conveyor/
.venv/
__pycache__/
"""


def _conveyor_yaml(name: str, image: str) -> str:
    from conveyor import __version__
    from conveyor.packaging import DEFAULT_BASE

    return f"""\
# Conveyor delivery project: the serving code lives here, the model in the registry.
#   conveyor pipeline run deliver              # locally, on this machine
#   conveyor ci github                         # the same pipeline as a GitHub Actions workflow
project: {name}
model:
  name: {name}                  # the registered model name
  ref: {name}                   # what gets delivered: the latest version (or {name}@production, {name}:3)
verify:
  contract: contract.yaml       # conveyor verify URL --contract contract.yaml
ci:
  # What every CI job installs: Conveyor pinned, as a package (a fork or a private index:
  # "conveyor-ml==X --index-url https://pypi.example.com/simple").
  install: ["conveyor-ml=={__version__}", "pytest>=8,<10"]

pipelines:
  deliver:
    description: Deliver a registered version as a verified image, pushed, with @staging moved to it.
    params:
      model: {name}
      image: {image}   # {{owner}}: the GitHub repository owner in CI, "local" here
      base_image: {DEFAULT_BASE}
      tls_verify: ""   # true or false; empty: as the container engine's registries.conf says
    triggers:
      - manual: {{}}
      - push: {{branches: [main]}}
      - model_version: {{model: {name}}}
    steps:
      fetch:
        uses: fetch-model
        with: {{ref: "${{{{ params.model }}}}"}}
      lint:
        uses: lint
        needs: [fetch]
      tests:
        uses: test
        needs: [fetch]
        with: {{command: "python -m pytest -q tests"}}
      contract:
        uses: verify
        needs: [fetch]
        with:
          target: "${{{{ steps.fetch.outputs.ref }}}}"
          contract: contract.yaml
          skip: ["latency.*"]
      build:
        uses: build
        needs: [lint, tests, contract]
        with:
          ref: "${{{{ steps.fetch.outputs.ref }}}}"
          tag: "${{{{ params.image }}}}:${{{{ steps.fetch.outputs.version }}}}"
          base_image: "${{{{ params.base_image }}}}"
        timeout: 1800
      verify-image:
        uses: verify
        needs: [build]
        with:
          target: "${{{{ steps.build.outputs.image }}}}"
          image: true
          contract: contract.yaml
      push:
        uses: push
        needs: [verify-image]
        with:
          image: "${{{{ steps.build.outputs.image }}}}"
          tls_verify: "${{{{ params.tls_verify }}}}"
      stage:
        uses: deploy
        needs: [push]
        with:
          name: "${{{{ steps.fetch.outputs.name }}}}"
          alias: staging
          version: "${{{{ steps.fetch.outputs.version }}}}"
"""


STARTER_TEST = '''"""Starter tests of this delivery project: CI runs them before any image is built."""

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = (".onnx", ".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".h5")


def test_the_contract_holds_golden_examples() -> None:
    contract = yaml.safe_load((ROOT / "contract.yaml").read_text())
    assert contract["golden"], "contract.yaml should hold at least one golden example"


def test_no_model_weights_are_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    weights = [path for path in tracked if path.endswith(WEIGHTS)]
    assert not weights, f"model files belong in the registry, not in git: {weights}"
'''


def _readme(name: str, registry: str | None, image: str) -> str:
    registry_url = registry or "https://registry.example.com"
    return f"""\
# {name}

A model delivered with [Conveyor](https://pypi.org/project/conveyor-ml/). The weights are not in
this repository: they live in the model registry, and every delivery fetches the version it ships.

## Deliver

On every push to `main`, by hand (Actions → conveyor deliver → Run workflow), or when a new
version of `{name}` is registered (a registry webhook relayed as `repository_dispatch`), the
workflow `.github/workflows/conveyor-deliver.yml` runs `conveyor.yaml`'s `deliver` pipeline:
fetch the model → lint ∥ tests ∥ contract → build the image → verify it → push it → move
`{name}@staging` to that version.

Repository secrets (Settings → Secrets and variables → Actions):

| secret | what |
|---|---|
| `CONVEYOR_REGISTRY` | the model registry, e.g. `{registry_url}` |
| `CONVEYOR_TOKEN` | a registry token with write scope (`conveyor registry token create ci --scope write`) |
| `CONTAINER_REGISTRY` | optional: where images go; `ghcr.io` by default, `docker.io` for Docker Hub |
| `CONTAINER_REGISTRY_USERNAME` | optional: its user (default: the workflow's actor) |
| `CONTAINER_REGISTRY_PASSWORD` | optional: its password or token (default: the workflow's `GITHUB_TOKEN`) |
| `CONVEYOR_SIGNING_KEY` | optional: `team.key`'s text (`conveyor keys generate team`): build and push sign with it |

With a signing key, anyone holding `team.pub` can check what was delivered before running it:
`conveyor verify --supply-chain {image}:VERSION --pull --trusted-key team.pub` (the model's
signature, the image's signature, its SLSA provenance and its SBOM; docs: Conveyor's
`docs/supply-chain.md`). Sign each model version with `conveyor models sign {name}:N --key team.key`.

Images are named `{image}:VERSION` (`{{owner}}` is this repository's owner); pass another
`image` when running the workflow by hand, or change it in `conveyor.yaml`.

## Locally

```sh
pip install conveyor-ml
export CONVEYOR_REGISTRY={registry_url} CONVEYOR_TOKEN=cvt_...
conveyor models register path/to/model --name {name}   # model.onnx (+ tokenizer.json), or a folder with model.yaml
conveyor pipeline run deliver                          # the same steps, on this machine
conveyor serve {name}@staging                          # serve what was delivered, on port 5000
conveyor ci github                                     # regenerate the workflow after editing conveyor.yaml
```

`contract.yaml` says what the model's HTTP answers must look like (golden examples, schema,
bad-input handling, latency); `conveyor verify URL --write-contract contract.yaml` records one
from a running server for review.
"""


def _starter_contract() -> str:
    from conveyor.verify.contract import CLASSIC_SCHEMA, DEFAULT_INVALID, Contract, GoldenCase, Latency, dump_contract

    contract = Contract(
        response_schema=dict(CLASSIC_SCHEMA),
        golden=[
            GoldenCase(
                name="answers-a-boolean",
                input=["MLOps is critical for robustness"],
                field="positive",
                among=[True, False],
            )
        ],
        invalid=list(DEFAULT_INVALID),
        latency=Latency(p95_ms=250, concurrency=8, requests=200),
    )
    header = (
        "# The model's contract: what `conveyor verify` checks on every layer a request crosses.\n"
        "# Golden cases take exactly one of exact / among / within. Edit before relying on it.\n"
    )
    return header + dump_contract(contract)


FILES = ("conveyor.yaml", ".gitignore", "contract.yaml", "README.md", "tests/test_project.py")
TASKS = tuple(task for task in Task if task.named_inputs)  # a contract is recorded from inputs a person can read


def _recorded_contract(model_ref: str, task: str | None, sample: Path | None) -> str:
    """The contract recorded from the registered model's own answers, served here for the purpose."""
    from conveyor.errors import InvalidInput
    from conveyor.verify.checks import Context
    from conveyor.verify.contract import Contract, V2Settings, dump_contract
    from conveyor.verify.record import record_contract
    from conveyor.verify.targets import serve_model
    from conveyor.verify.task_contracts import served_metadata

    with serve_model(model_ref, timeout=120, on_notice=lambda text: stdout.print(f"note: {text}")) as running:
        ctx = Context(running.url, Contract())
        try:
            served = served_metadata(running.url, ctx.client, V2Settings(model=running.model_name or ""))
            served_task = (served.get("parameters") or {}).get("task", Task.TENSOR)
            if task is not None and served_task != task:
                raise InvalidInput(f"{model_ref} is a {served_task} model, not {task}: leave out --task or fix it")
            if served_task not in TASKS:
                tasks = ", ".join(TASKS)
                raise InvalidInput(f"{model_ref} is a {served_task} model: conveyor init records contracts of {tasks}")
            recorded = record_contract(ctx, None, running.model_name, sample)
        finally:
            ctx.close()
    header = (
        f"# The model's contract, recorded by `conveyor init` from {model_ref} ({served_task}): what\n"
        "# `conveyor verify` checks on every layer a request crosses. The golden cases are that version's\n"
        "# answers: review them, keep the clear cases, and tighten the latency objective.\n"
    )
    return header + dump_contract(recorded)


def _registered_version(name: str) -> tuple[str | None, str]:
    """NAME's version to record the contract from (its @production, else its latest) and one line saying
    which; (None, why) where nothing is registered under NAME or the registry cannot say."""
    from conveyor.errors import ConveyorError, NotFound
    from conveyor.registry.config import open_registry

    try:
        registry = open_registry()
        try:
            version = registry.resolve(f"{name}@production")
            return version.ref, f"recording contract.yaml from {version.ref} ({name}@production)"
        except NotFound:
            version = registry.resolve(name)
            return (
                version.ref,
                f"recording contract.yaml from {version.ref} (the latest version of {name}; no @production)",
            )
    except NotFound:
        return None, f"nothing is registered under {name}"
    except ConveyorError as exc:
        return None, f"the registry could not say whether {name} is registered ({exc})"


def init(
    directory: Annotated[Path, typer.Argument(help="Project folder (created if needed).")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Model name [default: the folder's name].")] = None,
    registry: Annotated[
        str | None, typer.Option(help="Model registry URL, for the README and the secrets it names.")
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="Image name [default: ghcr.io/{owner}/NAME, owner from CI].")
    ] = None,
    ci: Annotated[str | None, typer.Option("--ci", help="Also write the CI workflows: github.")] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="The model's task: text-classification, tabular-classification, tabular-regression, "
            "image-classification; checked against the registered version the contract is recorded from."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="A registered version (adult:1, adult@staging) to record contract.yaml from [default: "
            "NAME@production, else NAME's latest version]."
        ),
    ] = None,
    sample: Annotated[
        Path | None,
        typer.Option(help="Inputs for the golden cases: .txt texts, .csv/.json rows, an image or a folder of them."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold a delivery project for a model that lives in a registry.

    \b
    conveyor.yaml with a deliver pipeline (fetch -> lint | tests | contract -> build -> verify image
    -> push -> @staging), contract.yaml, tests/, a .gitignore keeping weights and data out, a README
    naming the repository secrets to set, and with --ci github the workflow.

    \b
    The contract fits the model's task: it is recorded from the registered version's own answers
    (--model, else NAME@production, else NAME's latest version; served here for a moment): the
    task's answer schema and bad inputs, and a golden case per --sample input.  Only where nothing
    is registered under NAME (and no --task other than text, no --sample) is it the text
    classifier's starter contract."""
    if ci not in (None, "github"):
        raise fail(f"--ci {ci}: the CI systems Conveyor writes workflows for: github")
    if task is not None and task not in TASKS:
        raise fail(f"--task {task}: one of {', '.join(TASKS)}")
    with handle_errors():
        model_name = check_name(name or directory.resolve().name)
    image_name = image or f"ghcr.io/{{owner}}/{model_name.lower()}"
    existing = [f for f in FILES if (directory / f).exists()]
    if existing and not force:
        raise fail(f"{', '.join(existing)} exist already in {directory}; use --force to overwrite", EXIT_CONFLICT)
    if model is not None:
        model_ref: str | None = model
        said = f"recording contract.yaml from {model}'s answers"
    else:
        model_ref, said = _registered_version(model_name)
    if model_ref is None and (task not in (None, Task.TEXT_CLASSIFICATION) or sample):
        raise fail(f"{said}: register the model first (`conveyor models register PATH --name {model_name}`), or name "
                   "a registered version with --model", EXIT_NOT_FOUND)  # fmt: skip
    if model_ref is None:
        said += ': contract.yaml is the text-classification starter ({"positive": bool}); once the model is '
        said += "registered, `conveyor init --force` records its own"
    stdout.print(said, highlight=False)
    if model_ref is not None:
        with handle_errors():
            contract = _recorded_contract(model_ref, task, sample)
    else:
        contract = _starter_contract()
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "conveyor.yaml": _conveyor_yaml(model_name, image_name),
        ".gitignore": GITIGNORE,
        "contract.yaml": contract,
        "README.md": _readme(model_name, registry, image_name),
        "tests/test_project.py": STARTER_TEST,
    }
    for filename, content in files.items():
        (directory / filename).parent.mkdir(parents=True, exist_ok=True)
        (directory / filename).write_text(content)
        stdout.print(f"wrote {directory / filename}")
    if ci == "github":
        from conveyor.pipeline.github import write_workflow
        from conveyor.pipeline.spec import get_pipeline, load_project

        with handle_errors():
            project = load_project(directory / "conveyor.yaml")
            path = write_workflow(
                "deliver", get_pipeline(project, "deliver", directory), directory / ".github" / "workflows", project.ci
            )
        stdout.print(f"wrote {path}")
    first = "" if model_ref else f"register the model (`conveyor models register PATH --name {model_name}`), "
    stdout.print(f"next: {first}set the repository secrets the README names, push to main")
