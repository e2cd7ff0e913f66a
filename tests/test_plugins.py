"""The one place extensions are found: Conveyor's own modules, then installed plugins' entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from conveyor import plugins
from conveyor.errors import ConveyorError


def test_each_kind_finds_its_builtin_modules() -> None:
    from conveyor.pipeline.step_types import step_types
    from conveyor.rollout.analysis.metrics import all_metrics
    from conveyor.verify.checks import REGISTERED, load_builtin_checks

    load_builtin_checks()
    assert {"verify", "register", "approval", "optimize"} <= set(step_types())
    assert {"traffic", "agreement", "contract"} <= {m.name for m in all_metrics()}
    assert any(c.id.startswith("deps.") for c in REGISTERED)


def test_a_plugin_that_fails_to_import_is_named_and_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint("acme", "acme_missing_module_for_the_test", "conveyor.metrics")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken] if group == "conveyor.metrics" else [])
    monkeypatch.setattr(plugins, "_loaded", set())
    for _ in range(2):  # not marked loaded after a failure: the next use says it again
        with pytest.raises(ConveyorError) as failed:
            plugins.load("metrics")
        message = str(failed.value)
        assert "the plugin 'acme'" in message and "conveyor.metrics entry point" in message
        assert "ModuleNotFoundError" in message and "acme_missing_module_for_the_test" in message
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins.load("metrics")
    assert "metrics" in plugins._loaded
