"""Settings as data: every field of a process's settings model reaches every front end.

For each long-running process the settings model is the one list of its knobs; these tests give
each field a value that is not its default through each front end in turn (the command's
option, the ``CONVEYOR_*`` variable, conveyor.yaml's section, and for the model server the
image's entry point ``python -m conveyor.serving``) and check the loaded settings hold it.  A
field one front end forgot fails here by name.  The last test starts the image's entry point on
a small model and sees ``--log-hash``, ``--max-items`` and ``--max-body-bytes`` take effect.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.cli.settings_options import given_on_command_line
from conveyor.containers import free_port
from conveyor.errors import InvalidInput
from conveyor.registry.server_settings import RegistryServerSettings
from conveyor.router.settings import RouterSettings
from conveyor.serving.__main__ import parser as image_parser
from conveyor.serving.settings import ImageServeSettings, ServeCommandSettings, ServeSettings
from conveyor.settings import ProcessSettings, SettingField, setting_fields
from conveyor.ui.settings import DashboardSettings
from tests.waiting import wait_for

#: each process's settings model and the command whose options it gives
PROCESSES: dict[str, tuple[type[ProcessSettings], tuple[str, ...]]] = {
    "serve": (ServeCommandSettings, ("serve",)),
    "router": (RouterSettings, ("router",)),
    "registry server": (RegistryServerSettings, ("registry", "serve")),
    "dashboard": (DashboardSettings, ("ui",)),
}
#: options of a command that are not server knobs: they mean something on the CLI's side only
CLI_SIDE: dict[str, set[str]] = {}


def _command(path: tuple[str, ...]) -> Any:
    """The command's click (Typer's own click) object."""
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _sample(field: SettingField) -> Any:
    """A valid value that is not the field's default."""
    if field.choices:
        return next(c for c in reversed(field.choices) if c != field.default)
    if field.kind is bool:
        return not field.default
    if field.repeatable:
        return ["alpha", "beta"]
    if field.kind is int:
        return int(field.ge or 0) + 2 if field.default != int(field.ge or 0) + 2 else int(field.ge or 0) + 3
    if field.kind is float:
        return (field.ge or 0) + 0.5
    return f"value-of-{field.name}"


def _as_text(value: Any) -> list[str]:
    """The value as command-line words after the option (a repeatable option repeats)."""
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _cli_words(field: SettingField, value: Any) -> list[str]:
    if field.argument:
        return [str(value)]
    if field.kind is bool:
        return [field.option if value else f"--no-{field.option[2:]}"]
    return [word for item in _as_text(value) for word in (field.option, item)]


def _required(settings: type[ProcessSettings]) -> dict[str, Any]:
    return {f.name: _sample(f) for f in setting_fields(settings) if f.required}


def _ids(process: str) -> list[str]:
    return [f.name for f in setting_fields(PROCESSES[process][0])]


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for settings, _ in PROCESSES.values():
        for field in setting_fields(settings):
            monkeypatch.delenv(field.env, raising=False)


@pytest.mark.parametrize("process", list(PROCESSES))
def test_the_commands_options_are_exactly_the_settings_fields(process: str) -> None:
    settings, path = PROCESSES[process]
    params = {p.name: p for p in _command(path).params}
    fields = {f.name: f for f in setting_fields(settings)}
    assert set(params) - CLI_SIDE.get(process, set()) == set(fields)
    for name, field in fields.items():
        param = params[name]
        if field.argument:
            assert param.param_type_name == "argument"
            continue
        assert field.option in param.opts, name
        assert param.envvar == field.env, name
        assert field.help and field.help.split(" [")[0] in (param.help or ""), name


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_setting_arrives_from_the_command_line(process: str) -> None:
    settings, path = PROCESSES[process]
    command = _command(path)
    for field in setting_fields(settings):
        value = _sample(field)
        words = _cli_words(field, value)
        for other, other_value in _required(settings).items():
            if other != field.name:
                words = _cli_words(next(f for f in setting_fields(settings) if f.name == other), other_value) + words
        with command.make_context(command.name, words) as context:
            given = given_on_command_line(context, context.params)
        assert settings.load(given).model_dump(mode="json")[field.name] == value, field.name


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_setting_arrives_from_its_variable(process: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, _ = PROCESSES[process]
    for field in setting_fields(settings):
        value = _sample(field)
        text = ",".join(value) if isinstance(value, list) else str(value).lower() if field.kind is bool else str(value)
        given = {k: v for k, v in _required(settings).items() if k != field.name}
        with monkeypatch.context() as env:
            env.setenv(field.env, text)
            assert settings.load(given).model_dump(mode="json")[field.name] == value, field.env


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_setting_arrives_from_conveyor_yaml(process: str, tmp_path: Path) -> None:
    settings, _ = PROCESSES[process]
    assert settings.yaml_section
    project = tmp_path / "conveyor.yaml"
    for field in setting_fields(settings):
        value = _sample(field)
        project.write_text(json.dumps({"project": "p", settings.yaml_section: {field.name: value}}))
        given = {k: v for k, v in _required(settings).items() if k != field.name}
        assert settings.load(given, project).model_dump(mode="json")[field.name] == value, field.name


def test_the_command_line_wins_over_the_variable_which_wins_over_conveyor_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "conveyor.yaml"
    project.write_text("serve:\n  port: 7001\n  max_items: 9\n  workers: 3\n")
    monkeypatch.setenv("CONVEYOR_SERVE_PORT", "7002")
    monkeypatch.setenv("CONVEYOR_SERVE_MAX_ITEMS", "10")
    loaded = ServeSettings.load({"model": "m", "port": 7003}, project)
    assert (loaded.port, loaded.max_items, loaded.workers, loaded.max_batch_size) == (7003, 10, 3, 32)


def test_a_bad_setting_is_one_line_naming_its_option_variable_and_key(tmp_path: Path) -> None:
    project = tmp_path / "conveyor.yaml"
    project.write_text("serve:\n  log_sample: 3\n")
    with pytest.raises(InvalidInput, match=r"--log-sample \(\$CONVEYOR_SERVE_LOG_SAMPLE, serve.log_sample\): "):
        ServeSettings.load({"model": "m"}, project)
    project.write_text("serve:\n  log_smaple: 0.5\n")
    with pytest.raises(InvalidInput, match="unknown setting log_smaple"):
        ServeSettings.load({"model": "m"}, project)


def test_the_image_entry_point_takes_every_serve_setting() -> None:
    options = {a.dest: a for a in image_parser()._actions if a.dest != "help"}
    fields = {f.name: f for f in setting_fields(ServeSettings)}
    assert set(fields) <= set(options)
    assert set(options) - set(fields) == {"expect_digest", "omitted_files"}  # the image's own
    for field in fields.values():
        value = _sample(field)
        words = ["/model"] if not field.argument else []
        parsed = vars(image_parser().parse_args(words + _cli_words(field, value)))
        assert ImageServeSettings.load(parsed).model_dump(mode="json")[field.name] == value, field.name
    assert ImageServeSettings.load({"model": "/model"}).host == "0.0.0.0"  # an image binds every interface


def test_conveyor_serve_documents_no_option_the_image_lacks() -> None:
    serve_help = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    options = serve_help.split("Options:", 1)[1].splitlines()
    documented = {line.split()[0] for line in options if line.strip().startswith("--")}
    documented -= {"--require-signed", "--trusted-key", "--help"}
    accepted = {option for action in image_parser()._actions for option in action.option_strings}
    assert "--log-hash" in documented
    assert documented == {f.option for f in setting_fields(ServeSettings) if not f.argument}
    assert documented - accepted == set()


def test_the_image_entry_point_hashes_drops_and_bounds_as_conveyor_serve_does(vote_model: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    port = free_port()
    argv = [sys.executable, "-m", "conveyor.serving", str(vote_model), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log-payloads", str(logs), "--log-sample", "1", "--log-hash", "text", "--log-rotate-seconds", "1"]
    argv += ["--max-items", "2", "--max-body-bytes", "200", "--max-batch-wait-ms", "1", "--graceful-timeout", "5"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_SERVE_")}
    log_path = tmp_path / "image.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**env, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, what="the image's entry point to be ready")
        answer = httpx.post(f"{url}/predict", json=["a great day"], timeout=10)
        assert answer.status_code == 200, answer.text
        too_many = httpx.post(f"{url}/predict", json=["good", "bad", "good"], timeout=10)
        assert too_many.status_code == 413 and "2" in too_many.json()["error"]
        too_big = httpx.post(f"{url}/predict", json=["good " * 100], timeout=10)
        assert too_big.status_code == 413

        def logged() -> list[dict[str, Any]]:
            return [json.loads(line) for p in logs.rglob("*.jsonl") for line in p.read_text().splitlines()]

        wait_for(lambda: len(logged()) == 1, timeout=30, what="the payload log's file")
        (record,) = logged()
        (text,) = record["inputs"]
        assert text.startswith("sha256:") and "great" not in json.dumps(record)  # --log-hash text took effect
    finally:
        process.terminate()
        process.wait(30)


def test_the_image_entry_point_refuses_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.serving", str(tmp_path), "--log-payloads", str(tmp_path), "--log-sample", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --log-sample ($CONVEYOR_SERVE_LOG_SAMPLE): Input should be less than or equal to 1"
    )


# ---- the rollout spec: conveyor.yaml's rollout: section is the source of `rollout start`'s options

ROLLOUT_SAMPLES = {  # option text -> the spec's value, for every scalar field of RolloutSettings
    "service": ("shop", "shop"),
    "router": ("http://127.0.0.1:9", "http://127.0.0.1:9"),
    "strategy": ("blue-green", "blue-green"),
    "steps": ("5,50,100", [5.0, 50.0, 100.0]),
    "interval": ("45s", "45s"),
    "rollback_window": ("2m", "2m"),
    "contract": ("contract.yaml", "contract.yaml"),
    "command": ("serve-it --port {port}", "serve-it --port {port}"),
}


def _started(monkeypatch: pytest.MonkeyPatch, *words: str) -> Any:
    """The request `conveyor rollout start` builds from ``words`` (the service is not called)."""
    from conveyor.rollout import service as rollouts

    seen: list[Any] = []

    def capture(request: Any, config: Any = None, background: bool = True) -> Any:
        seen.append(request)
        raise InvalidInput("captured")

    monkeypatch.setattr(rollouts, "start", capture)
    result = CliRunner().invoke(app, ["rollout", "start", "votes:2", *words])
    assert result.exit_code == 2 and seen, result.output
    return seen[0]


def test_rollout_start_has_an_option_for_every_field_of_the_rollout_spec() -> None:
    from dataclasses import fields

    from conveyor import api
    from conveyor.cli.rollout_export import EXPORTED
    from conveyor.cli.settings_options import spec_option_names
    from conveyor.rollout import service as rollouts
    from conveyor.rollout.config import RolloutSettings

    names = spec_option_names(RolloutSettings)
    assert set(names) == set(ROLLOUT_SAMPLES)  # thresholds and supply_chain have options of their own
    options = {p.name: p for p in _command(("rollout", "start")).params}
    for name in names:
        assert f"--{name.replace('_', '-')}" in options[name].opts
        assert f"rollout.{name}" in (options[name].help or "")  # says conveyor.yaml's key is its default
    assert set(names) <= {f.name for f in fields(rollouts.StartRequest)}
    assert set(names) <= set(inspect.signature(api.start_rollout).parameters)
    assert set(EXPORTED) == {f.name for f in fields(rollouts.ExportRequest)} & set(names)


def test_every_rollout_setting_arrives_from_the_command_line_and_from_conveyor_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.rollout.config import RolloutSettings, load_settings
    from conveyor.rollout.plan import Request, chosen_spec

    project = tmp_path / "conveyor.yaml"
    for name, (text, value) in ROLLOUT_SAMPLES.items():
        request = _started(monkeypatch, f"--{name.replace('_', '-')}", text)
        assert chosen_spec(request, RolloutSettings()).model_dump()[name] == value, name
        project.write_text(json.dumps({"rollout": {name: value}}))
        assert chosen_spec(Request("votes:2"), load_settings(project)).model_dump()[name] == value, name
    project.write_text("rollout:\n  steps: [20, 100]\n  interval: 1m\n")
    chosen = chosen_spec(_started(monkeypatch, "--steps", "30,100"), load_settings(project))
    assert (chosen.steps, chosen.interval) == (
        [30.0, 100.0],
        "1m",
    )  # the option over the file, the file over the default
    with pytest.raises(InvalidInput, match=r"--steps: invalid steps '50,10'"):
        chosen_spec(Request("votes:2", steps="50,10"), RolloutSettings())


# ---- every settings section a user would copy from the docs loads with its model


def _documented_sections() -> list[tuple[str, int, str, str]]:
    import re

    import yaml

    wanted = {settings.yaml_section for settings, _ in PROCESSES.values()} | {"rollout"}
    found = []
    for page in [DOC.parent.parent / "README.md", *sorted(DOC.parent.glob("*.md"))]:
        text = page.read_text()
        for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
            parsed = yaml.safe_load(match.group(1))
            line = text[: match.start()].count("\n") + 1
            if isinstance(parsed, dict):
                found += [(page.name, line, key, match.group(1)) for key in sorted(wanted & set(parsed))]
    return found


def test_every_documented_settings_section_loads(tmp_path: Path) -> None:
    from conveyor.rollout.analysis.thresholds import checked_thresholds
    from conveyor.rollout.config import load_settings

    sections = _documented_sections()
    assert {key for _, _, key, _ in sections} >= {"serve", "router", "rollout"}
    by_section = {settings.yaml_section: settings for settings, _ in PROCESSES.values()}
    project = tmp_path / "conveyor.yaml"
    for page, line, key, block in sections:
        project.write_text(block)
        try:
            if key == "rollout":
                checked_thresholds(load_settings(project).thresholds)
            else:
                by_section[key].load(_required(by_section[key]), project)
        except InvalidInput as exc:
            raise AssertionError(f"{page}:{line}: {key}: {exc}") from None


# ---- docs/settings.md: the tables are generated from the models (python -m tests.test_settings writes them)

DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
BEGIN, END = "<!-- generated by tests/test_settings.py: begin -->", "<!-- generated by tests/test_settings.py: end -->"
TITLES = {
    "serve": "`conveyor serve` and the image's `python -m conveyor.serving`",
    "router": "`conveyor router`",
    "registry server": "`conveyor registry serve`",
    "dashboard": "`conveyor ui`",
}


def _cell(value: Any) -> str:
    if value in (None, [], ()):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def settings_tables() -> str:
    parts = []
    for process, (settings, _) in PROCESSES.items():
        parts.append(f"### {TITLES[process]}\n")
        parts.append(f"conveyor.yaml section `{settings.yaml_section}:`\n")
        parts.append("| key | option | variable | default | meaning |")
        parts.append("|---|---|---|---|---|")
        for field in setting_fields(settings):
            option = field.option if not field.argument else f"{field.option} (argument)"
            meaning = field.help.replace("|", "\\|")
            default = _cell(field.default) if field.show_default else ""
            parts.append(f"| `{field.name}` | `{option}` | `{field.env}` | {default} | {meaning} |")
        parts.append("")
    from conveyor.cli.settings_options import spec_option_names
    from conveyor.rollout.config import RolloutSettings

    parts.append("### `conveyor rollout start` (the rollout spec)\n")
    parts.append("conveyor.yaml section `rollout:`\n")
    parts.append("| key | option | default | meaning |")
    parts.append("|---|---|---|---|")
    for name in spec_option_names(RolloutSettings):
        info = RolloutSettings.model_fields[name]
        default = info.get_default(call_default_factory=True)
        parts.append(f"| `{name}` | `--{name.replace('_', '-')}` | {_cell(default)} | {info.description} |")
    parts.append("")
    return "\n".join(parts)


def _documented() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()


def test_docs_settings_md_lists_every_setting_of_every_process() -> None:
    assert _documented() == settings_tables().strip(), "regenerate with: .venv/bin/python -m tests.test_settings"


if __name__ == "__main__":
    text = DOC.read_text()
    DOC.write_text(text[: text.index(BEGIN) + len(BEGIN)] + "\n\n" + settings_tables() + "\n" + text[text.index(END) :])
