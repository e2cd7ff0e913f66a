"""Journey: the `conveyor` command as installed from the wheel: every --help, the defaults it shows,
a fast start, and the documented registry commands run as written."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer

from conveyor.cli.main import app
from tests.docs_blocks import shell_block
from tests.journeys.conftest import User, copy_model

# (pydantic is not on the list: typer itself imports it to convert a command's arguments)
HEAVY = ("onnxruntime", "sqlalchemy", "aiohttp", "uvicorn", "httpx", "numpy", "boto3", "rich", "yaml", "onnx",
         "scipy", "sklearn", "pandas", "llama_cpp")  # fmt: skip


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(prefix, group)]
    if hasattr(group, "commands"):  # a group (typer carries its own copy of click)
        for name, command in group.commands.items():
            found += _commands(command, (*prefix, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _option_blocks(text: str) -> dict[str, str]:
    """Each option's help text in click's plain layout, keyed by its first flag."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^  (-\w, )?(--[\w-]+)", line)
        if match:
            current = match.group(2)
            blocks[current] = line
        elif current and line.startswith("      "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return {flag: " ".join(block.split()) for flag, block in blocks.items()}


# Every command's --help rendered in one process of the user's venv (a conveyor start costs about
# a quarter of a CPU-second, and there are over ninety commands); a sample is checked against the
# installed `conveyor` command itself, so the sweep shows what a user sees.
HELP_SWEEP = """
import json, sys
import typer
from click.testing import CliRunner
from conveyor.cli.main import app

command, runner, out = typer.main.get_command(app), CliRunner(), {}
for path in json.loads(sys.stdin.read()):
    result = runner.invoke(command, [*path, "--help"], prog_name="conveyor", env={"COLUMNS": "100"})
    out[" ".join(path)] = [result.exit_code, result.output]
print(json.dumps(out))
"""


def _all_help(user: User) -> dict[str, list]:
    swept = subprocess.run(
        [str(user.venv / "bin" / "python"), "-c", HELP_SWEEP],
        input=json.dumps([list(path) for path, _ in COMMANDS]),
        capture_output=True,
        text=True,
        cwd=user.workdir,
        env=user.environ({"COLUMNS": "100"}),
        timeout=120,
    )
    assert swept.returncode == 0, swept.stderr
    return json.loads(swept.stdout)


def test_every_command_has_help_that_shows_its_defaults(user: User) -> None:
    assert len(COMMANDS) > 40
    helps = _all_help(user)
    for sample in [(), ("models", "register"), ("rollout", "start"), ("pipeline", "run")]:
        real = user.run(*sample, "--help", env={"COLUMNS": "100"})
        assert real.returncode == 0 and real.stdout == helps[" ".join(sample)][1], sample
    for path, command in COMMANDS:
        code, text = helps[" ".join(path)]
        assert code == 0 and "Usage: conveyor" in text, (path, text)
        blocks = _option_blocks(text)
        for param in command.params:
            if param.param_type_name != "option" or param.hidden or "--help" in param.opts:
                continue
            flag = next(o for o in param.opts if o.startswith("--"))
            block = blocks.get(flag)
            assert block is not None, (path, flag, text)
            written = re.search(r"\[default: [^\]]+\]", param.help or "")
            if written:  # a default described in words must survive rendering (wrapped anywhere, a hyphen too)
                assert re.sub(r"\s+", "", written.group(0)) in re.sub(r"\s+", "", block), (path, flag, block)
            elif param.default not in (None, False, (), "") and param.show_default is not False and not param.is_flag:
                assert re.search(r"\[(env var: [^;\]]+; )?default: ", block), (path, flag, block)


@pytest.mark.parametrize("args", [["--help"], ["version"], ["models", "--help"], ["rollout", "start", "--help"]])
def test_the_command_starts_without_importing_heavy_libraries(user: User, args: list[str]) -> None:
    probe = (
        "import json, sys\n"
        "from conveyor.cli.main import main\n"
        f"sys.argv = ['conveyor', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [str(user.venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=user.workdir, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []


def test_the_documented_registry_commands_run_as_written(user: User, vote_folder: Path) -> None:
    copy_model(vote_folder, user.workdir / "models" / "sentiment")
    commands = shell_block("docs/registry.md", "conveyor models register models/sentiment")
    assert commands[0].startswith("conveyor models register models/sentiment")
    download_dir = user.workdir / "downloaded"
    for line in commands:
        comment = line.partition("#")[2]
        words = shlex.split(line, comments=True)
        assert words[0] == "conveyor"
        # the one change: the docs' /tmp/model lands in this user's folder
        words = [str(download_dir) if w == "/tmp/model" else w for w in words]
        if words[1] == "serve":
            server = user.serve(*words[2:])
            server.stop()
            assert "serving sentiment:1" in server.log()
            continue
        result = user.run(*words[1:])
        if "refused" in comment or "likewise" in comment:
            assert result.returncode == 5 and "Traceback" not in result.stderr, (line, result.stderr)
        else:
            assert result.returncode == 0, (line, result.stdout, result.stderr)
    assert (download_dir / "model.onnx").is_file()
    shown = json.loads(user.ok("models", "show", "sentiment:1", "--json").stdout)
    assert shown["tags"] == {"reviewed": "yes"} and shown["aliases"] == ["production"]
    assert shown["properties"]["dataset"] == "vader" and shown["lineage"]["metrics"] == {"accuracy": 0.78}


def test_a_uv_made_venv_packages_a_signed_version_with_its_sbom(user: User, vote_folder: Path) -> None:
    """The user's venv is uv's (no pip of its own): packaging still downloads the image's wheels."""
    model = copy_model(vote_folder, user.workdir / "votes")
    user.ok("keys", "generate", "team")
    user.ok("models", "register", str(model), "--name", "votes")
    user.ok("models", "sign", "votes:1", "--key", "team.key")
    user.ok("models", "verify-signature", "votes:1", "--trusted-key", "team.pub")
    user.ok("package", "votes:1", "-o", "ctx")
    sbom = json.loads((user.workdir / "ctx" / "sbom" / "sbom.cdx.json").read_text())
    libraries = {c["name"] for c in sbom["components"] if c["type"] == "library"}
    assert {"onnxruntime", "numpy", "uvicorn"} <= libraries
    requirements = (user.workdir / "ctx" / "requirements.txt").read_text()
    assert requirements.count("--hash=sha256:") == len(libraries)


def test_the_documented_model_signing_commands_run_as_written(user: User, vote_folder: Path) -> None:
    """docs/supply-chain.md's walk-through up to the image (built and pushed in test_scaleout's journey)."""
    copy_model(vote_folder, user.workdir / "models" / "sentiment")
    block = shell_block("docs/supply-chain.md", "conveyor keys generate team                     #")
    signing = block[: next(i for i, line in enumerate(block) if line.startswith("conveyor build"))]
    assert len(signing) == 4
    for line in signing:
        result = user.run(*shlex.split(line, comments=True)[1:])
        assert result.returncode == 0, (line, result.stdout, result.stderr)
    assert oct((user.workdir / "team.key").stat().st_mode & 0o777) == "0o600"
