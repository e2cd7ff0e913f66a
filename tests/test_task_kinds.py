"""Task kinds: one enum whose values are the strings persisted in model.yaml and answered in v2
metadata, with what each task means answered in one place."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from conveyor.serving.spec import ModelSpec, load_spec_file
from conveyor.task_kinds import Task

SRC = Path(__file__).resolve().parent.parent / "src" / "conveyor"
PERSISTED = {
    "text-classification",
    "tabular-classification",
    "tabular-regression",
    "image-classification",
    "tensor",
    "text-generation",
    "text-embedding",
}


def test_the_values_are_the_strings_model_yaml_and_v2_metadata_have_always_held() -> None:
    assert {task.value for task in Task} == PERSISTED
    for task in Task:
        assert task == task.value and str(task) == task.value and f"{task}" == task.value
        assert json.dumps({"task": task}) == json.dumps({"task": task.value})
        assert Task.of(task.value) is task
    assert Task.of("text-summarization") is None and Task.of(None) is None


def test_a_spec_reads_its_task_from_model_yaml_and_writes_back_the_same_string(tmp_path: Path) -> None:
    spec_file = tmp_path / "model.yaml"
    spec_file.write_text(
        "name: area\ntask: tabular-regression\nmodel_file: model.onnx\nfeatures: [{name: rooms, type: integer}]\n"
    )
    spec = load_spec_file(spec_file)
    assert spec.task is Task.TABULAR_REGRESSION and spec.labels == [] and spec.tabular
    written = yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
    assert "task: tabular-regression\n" in written
    assert json.loads(spec.model_dump_json())["task"] == "tabular-regression"
    assert ModelSpec(name="sentiment").task is Task.TEXT_CLASSIFICATION  # the default, as before


def test_each_property_names_the_tasks_it_held_for_before() -> None:
    def having(trait: str) -> set[str]:
        return {task.value for task in Task if getattr(task, trait)}

    assert having("takes_text") == {"text-classification"}
    assert having("tabular") == {"tabular-classification", "tabular-regression"}
    assert having("takes_images") == {"image-classification"}
    assert having("regression") == {"tabular-regression"}
    assert having("named_inputs") == PERSISTED - {"tensor", "text-generation", "text-embedding"}  # monitored
    assert having("generates") == {"text-generation"}
    assert having("embeds") == {"text-embedding"}
    assert having("openai_api") == {"text-generation", "text-embedding"}
    assert having("tokenized") == {"text-classification", "text-embedding"}
    assert having("row_inputs") == {"text-classification", "tabular-classification", "tabular-regression"}
    assert {task.value: task.answer_field for task in Task if task.row_inputs} == {
        "text-classification": "label",
        "tabular-classification": "label",
        "tabular-regression": "value",
    }


def test_every_task_is_served() -> None:
    """Each task has its TaskServer (/predict, v2) but generation and embeddings: conveyor.generative answers them
    with the OpenAI API."""
    tasks = (SRC / "serving" / "tasks" / "__init__.py").read_text()
    assert {task.name for task in Task if not task.openai_api} == set(re.findall(r"Task\.([A-Z_]+): ", tasks))
    assert "task.openai_api" in (SRC / "serving" / "server.py").read_text()


def test_no_module_compares_a_task_by_its_string() -> None:
    """Each question about a task is a property of ``Task``; a string compared elsewhere is the debt coming back.
    ``convert/`` is left out: its converters name the task a framework's model loads as.  ``"tensor"`` is
    too common a word to look for (an MLflow signature's input type is one)."""
    literal = re.compile("|".join(f'"{re.escape(value)}"' for value in PERSISTED - {"tensor"}))
    found = {
        str(path.relative_to(SRC)): [line.strip() for line in path.read_text().splitlines() if literal.search(line)]
        for path in SRC.rglob("*.py")
        if path.name != "task_kinds.py" and "convert" not in path.relative_to(SRC).parts
    }
    assert {path: lines for path, lines in found.items() if lines} == {}
