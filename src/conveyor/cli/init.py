"""``conveyor init``: a new delivery project skeleton."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import EXIT_CONFLICT, fail, handle_errors, stdout
from conveyor.registry.refs import check_name

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


def _conveyor_yaml(name: str) -> str:
    return f"""\
# Conveyor delivery project
project: {name}
model:
  name: {name}                  # the registered model name
  path: models/{name}           # local model folder (model.onnx, tokenizer.json, model.yaml); not in git
  ref: {name}@production        # what gets delivered
serve:
  port: 5000
verify:
  contract: contract.yaml       # conveyor verify URL --contract contract.yaml
"""


def _readme(name: str) -> str:
    return f"""\
# {name}

A model delivered with [Conveyor](https://pypi.org/project/conveyor-ml/).

```sh
conveyor models register models/{name} --name {name} --alias staging   # register a new version
conveyor serve {name}@staging                                          # serve it on port 5000
conveyor verify {name}@staging --contract contract.yaml --junit verify.xml
```

`contract.yaml` says what the model's HTTP answers must look like (golden examples, schema,
bad-input handling, latency). Record one from a running server with
`conveyor verify http://127.0.0.1:5000 --write-contract contract.yaml` and review it.
Model files stay out of git (see `.gitignore`): the registry keeps them with their checksums.
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


def init(
    directory: Annotated[Path, typer.Argument(help="Project folder (created if needed).")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Model name [default: the folder's name].")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Create a delivery project: conveyor.yaml, a .gitignore keeping weights out, a starter contract, a README."""
    directory.mkdir(parents=True, exist_ok=True)
    with handle_errors():
        model_name = check_name(name or directory.resolve().name)
    files = {
        "conveyor.yaml": _conveyor_yaml(model_name),
        ".gitignore": GITIGNORE,
        "contract.yaml": _starter_contract(),
        "README.md": _readme(model_name),
    }
    existing = [f for f in files if (directory / f).exists()]
    if existing and not force:
        raise fail(f"{', '.join(existing)} exist already in {directory}; use --force to overwrite", EXIT_CONFLICT)
    for filename, content in files.items():
        (directory / filename).write_text(content)
        stdout.print(f"wrote {directory / filename}")
