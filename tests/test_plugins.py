"""The one place extensions are found: Conveyor's own modules, then installed plugins' entry points.

A plugin that fails to import costs one warning line; only what needs it fails, with that line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from conveyor import plugins
from conveyor.errors import PluginFailed

MISSING = "acme_missing_module_for_the_test"


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing loaded yet (the tables the decorators fill keep Conveyor's own entries)."""
    kinds = list(plugins.EXTENSION_POINTS)
    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(plugins, "_modules", {kind: [] for kind in kinds})
    monkeypatch.setattr(plugins, "_plugin_modules", {kind: [] for kind in kinds})
    monkeypatch.setattr(plugins, "_broken", {kind: [] for kind in kinds})


def installed(monkeypatch: pytest.MonkeyPatch, group: str, *entries: tuple[str, str]) -> None:
    """Pretend these entry points of ``group`` are installed (no others are)."""
    found = [EntryPoint(name, value, group) for name, value in entries]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [e for e in found if e.group == group])


def test_each_kind_finds_its_builtin_modules() -> None:
    from conveyor.convert.frameworks import frameworks
    from conveyor.convert.kinds import converters
    from conveyor.pipeline.step_types import step_types
    from conveyor.rollout.analysis.metrics import all_metrics
    from conveyor.verify.checks import REGISTERED, load_builtin_checks

    load_builtin_checks()
    assert {"verify", "register", "approval", "optimize"} <= set(step_types())
    assert {"traffic", "agreement", "contract"} <= {m.name for m in all_metrics()}
    assert any(c.id.startswith("deps.") for c in REGISTERED)
    assert [c.NAME for c in converters()] == ["huggingface", "pytorch", "tabular"]  # asked in this order
    assert [f.NAME for f in frameworks()] == ["xgboost", "lightgbm", "scikit-learn"]  # wrappers before sklearn


@pytest.mark.usefixtures("fresh_plugins")
def test_a_broken_plugin_is_one_warning_line_and_loading_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from conveyor.rollout.analysis.metrics import all_metrics

    installed(monkeypatch, "conveyor.metrics", ("acme", MISSING))
    with caplog.at_level(logging.WARNING, logger="conveyor.plugins"):
        assert {"traffic", "agreement", "contract"} <= {m.name for m in all_metrics()}
        all_metrics()  # loaded once: no second warning
    (line,) = [r.getMessage() for r in caplog.records if r.name == "conveyor.plugins"]
    assert line == (
        f"warning: the plugin 'acme' of an installed package (conveyor.metrics entry point {MISSING}) "
        f"failed to load: ModuleNotFoundError: No module named '{MISSING}'"
    )
    (broken,) = plugins.broken("metrics")
    assert "warning: " + broken.line == line
    assert plugins.broken("step_types") == [] and plugins.missing("step_types", "anything") is None


@pytest.mark.usefixtures("fresh_plugins")
def test_what_needs_a_broken_plugin_fails_with_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.convert.kinds import convert_model
    from conveyor.engines import get_engine
    from conveyor.pipeline.step_types import get_step_type
    from conveyor.verify.checks import find_check

    groups = ("conveyor.step_types", "conveyor.checks", "conveyor.engines", "conveyor.converters")
    found = [EntryPoint("acme", MISSING, group) for group in groups]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [e for e in found if e.group == group])

    assert get_step_type("register").name == "register"  # the built-ins work
    assert find_check("lint.ruff").id == "lint.ruff"
    assert get_engine("podman").name == "podman"
    for kind, ask in (
        ("conveyor.step_types", lambda: get_step_type("acme-notify")),
        ("conveyor.checks", lambda: find_check("acme.answer-not-empty")),
        ("conveyor.engines", lambda: get_engine("acme-engine")),
        ("conveyor.converters", lambda: convert_model(Path(__file__), Path("unused"), "x")),
    ):
        with pytest.raises(PluginFailed) as failed:
            ask()
        assert str(failed.value) == (
            f"the plugin 'acme' of an installed package ({kind} entry point {MISSING}) "
            f"failed to load: ModuleNotFoundError: No module named '{MISSING}'"
        )


@pytest.mark.usefixtures("fresh_plugins")
def test_verify_does_not_gate_without_a_broken_check_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.verify.runner import load_custom_checks

    assert load_custom_checks(None, []) == []  # nothing broken: nothing in the way
    installed(monkeypatch, "conveyor.checks", ("acme", MISSING))
    monkeypatch.setattr(plugins, "_loaded", set())
    with pytest.raises(PluginFailed, match=r"the plugin 'acme' .*\(conveyor\.checks entry point"):
        load_custom_checks(None, [])


@pytest.mark.usefixtures("fresh_plugins", "conveyor_home")
def test_a_threshold_of_a_broken_metric_plugin_fails_with_its_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from conveyor.errors import InvalidInput
    from conveyor.rollout import service

    with pytest.raises(InvalidInput, match="unknown threshold"):  # a typo, with every plugin loaded
        service.start(service.StartRequest("votes:2", thresholds={"acme_max_canary_requests": 3}))
    installed(monkeypatch, "conveyor.metrics", ("acme", MISSING))
    monkeypatch.setattr(plugins, "_loaded", set())
    with pytest.raises(PluginFailed, match=r"the plugin 'acme' .*\(conveyor\.metrics entry point"):
        service.start(service.StartRequest("votes:2", thresholds={"acme_max_canary_requests": 3}))
    project = tmp_path / "conveyor.yaml"  # conveyor.yaml's rollout.thresholds name it
    project.write_text("rollout:\n  thresholds:\n    acme_max_canary_requests: 3\n")
    with pytest.raises(PluginFailed, match=r"the plugin 'acme' .*\(conveyor\.metrics entry point"):
        service.start(service.StartRequest("votes:2"), project)
    with pytest.raises(PluginFailed, match=r"the plugin 'acme' .*\(conveyor\.metrics entry point"):
        service.export(service.ExportRequest(image="votes:2", config=project))


@pytest.mark.usefixtures("fresh_plugins")
def test_a_plugin_converter_is_one_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from conveyor.convert.kinds import convert_model, is_framework_model

    (tmp_path / "acme_converter.py").write_text(
        textwrap.dedent(
            """
            from conveyor.convert.conversion import Conversion

            NAME = "acme"
            ORDER = 5

            def accepts(path):
                return path.suffix == ".acme"

            def convert(path, out, name, options):
                out.mkdir()
                (out / "converted-from").write_text(path.name)
                return Conversion(spec=None, report=None, folder=out)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    installed(monkeypatch, "conveyor.converters", ("acme", "acme_converter"))
    model = tmp_path / "weights.acme"
    model.write_text("a model")
    assert is_framework_model(model) and not is_framework_model(tmp_path / "notes.txt")
    conversion = convert_model(model, tmp_path / "out", "m")
    assert (conversion.folder / "converted-from").read_text() == "weights.acme"


def _broken_plugin_path(tmp_path: Path) -> Path:
    """A folder for PYTHONPATH holding an installed distribution whose conveyor.metrics entry point
    names a module that does not exist (as a package with a stale entry point does)."""
    site = tmp_path / "site"
    info = site / "acme_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[conveyor.metrics]\nacme = {MISSING}\n\n[conveyor.step_types]\nacme = {MISSING}\n"
    )
    return site


def test_a_broken_plugin_costs_one_line_and_fails_only_what_needs_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
        "PYTHONPATH": str(_broken_plugin_path(tmp_path)),
        "CONVEYOR_HOME": str(home),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    warning = (
        f"(conveyor.metrics entry point {MISSING}) failed to load: ModuleNotFoundError: No module named '{MISSING}'"
    )
    for command in (
        [sys.executable, "-m", "conveyor", "version"],
        [sys.executable, "-m", "conveyor", "models", "list", "--json"],
        [sys.executable, "-c", "from conveyor import open_registry; open_registry().list_models()"],
    ):
        result = run(*command)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) <= 1, result.stderr
        assert all(line.startswith("warning: the plugin 'acme' of acme-broken") for line in result.stderr.splitlines())
        assert all(warning in line for line in result.stderr.splitlines())

    (tmp_path / "conveyor.yaml").write_text("pipelines:\n  ship:\n    steps:\n      tell: {uses: acme-notify}\n")
    needs_it = run(sys.executable, "-m", "conveyor", "pipeline", "validate")
    assert needs_it.returncode == 1
    step_types_line = (
        f"the plugin 'acme' of acme-broken (conveyor.step_types entry point {MISSING}) failed to load: "
        f"ModuleNotFoundError: No module named '{MISSING}'"
    )
    assert f"error: {step_types_line}" in needs_it.stderr.splitlines()
    assert "Traceback" not in needs_it.stderr
