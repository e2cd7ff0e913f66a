"""What `conveyor ci kfp` compiles for a cluster: the tasks' image, Secrets, build needs and timeouts.

Read from the compiled IR YAML and its Kubernetes platform spec (``kfp.kubernetes``), as the KFP
backend reads them; that the compiled file runs is the journey's (tests/journeys/test_kfp.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor import __version__
from conveyor.pipeline.spec import CISettings, Pipeline

DELIVER = Pipeline.model_validate(
    {
        "steps": {
            "fetch": {"uses": "fetch-model", "with": {"ref": "m@staging"}, "timeout": 300},
            "build": {
                "uses": "build",
                "needs": ["fetch"],
                "with": {"ref": "m@staging", "tag": "img:1"},
                "timeout": 1800,
            },
            "verify": {
                "uses": "verify",
                "needs": ["build"],
                "with": {"target": "${{ steps.build.outputs.image }}", "image": True},
                "timeout": 600,
                "retries": 1,
            },
            "stage": {"uses": "deploy", "needs": ["verify"], "with": {"name": "m", "alias": "staging", "version": "1"}},
        }
    }
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each task's step names -> its image and its Kubernetes executor config."""
    from conveyor.pipeline.kfp import compile_pipeline

    out = tmp_path_factory.mktemp("kfp") / "deliver.yaml"
    compile_pipeline(
        "deliver", DELIVER, out, CISettings(), image="tasks:1", builder_image="builder:1", pull_secrets=["pull"]
    )
    ir, platform = yaml.safe_load_all(out.read_text())
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    tasks = {}
    for task in ir["root"]["dag"]["tasks"].values():
        executor = ir["components"][task["componentRef"]["name"]]["executorLabel"]
        steps = " ".join(task["inputs"]["parameters"]["steps"]["runtimeValue"]["constant"])
        image = ir["deploymentSpec"]["executors"][executor]["container"]["image"]
        tasks[steps] = {"image": image, **kubernetes[executor]}
    return tasks


def _secrets(config: dict[str, Any]) -> dict[str, tuple[dict[str, str], bool]]:
    return {
        s["secretName"]: ({k["secretKey"]: k["envVar"] for k in s["keyToEnv"]}, s["optional"])
        for s in config["secretAsEnv"]
    }


def test_every_task_reaches_the_model_registry_through_its_secret_and_pulls_with_the_pull_secret(
    compiled: dict[str, dict[str, Any]],
) -> None:
    assert set(compiled) == {"fetch", "build verify", "stage"}
    registry = ({"url": "CONVEYOR_REGISTRY", "token": "CONVEYOR_TOKEN"}, False)
    assert all(_secrets(config)["conveyor-registry"] == registry for config in compiled.values())
    assert all([s["secretName"] for s in config["imagePullSecret"]] == ["pull"] for config in compiled.values())


def test_only_the_building_task_gets_the_container_registry_and_the_signing_key(
    compiled: dict[str, dict[str, Any]],
) -> None:
    build = compiled["build verify"]
    assert _secrets(build)["conveyor-container-registry"] == (
        {"username": "CONVEYOR_REGISTRY_USERNAME", "password": "CONVEYOR_REGISTRY_PASSWORD"},
        True,
    )
    assert _secrets(build)["conveyor-signing-key"] == ({"key": "CONVEYOR_SIGNING_KEY"}, True)
    assert build["image"] == "builder:1"
    assert "buildah" in build["podMetadata"]["annotations"]["conveyor.dev/needs"]
    for steps in ("fetch", "stage"):
        assert set(_secrets(compiled[steps])) == {"conveyor-registry"}
        assert compiled[steps]["image"] == "tasks:1"
        assert "podMetadata" not in compiled[steps]


def test_each_task_times_out_after_its_steps_attempts_and_the_clone(compiled: dict[str, dict[str, Any]]) -> None:
    from conveyor.pipeline.kfp import START_ALLOWANCE

    assert int(compiled["fetch"]["activeDeadlineSeconds"]) == 300 + START_ALLOWANCE
    assert int(compiled["build verify"]["activeDeadlineSeconds"]) == 1800 + 600 * 2 + START_ALLOWANCE


def test_the_tasks_image_has_conveyor_installed_once_and_a_builder_where_a_step_builds(tmp_path: Path) -> None:
    import kfp

    from conveyor.pipeline.kfp import DEFAULT_IMAGE, write_containerfile

    assert f"conveyor-kfp:{__version__}" == DEFAULT_IMAGE
    ci = CISettings(install=["conveyor-ml==1.2.3"])
    text = write_containerfile([DELIVER], tmp_path, ci).read_text()
    assert "FROM docker.io/library/python:3.11-slim" in text
    assert "uv pip install --system 'conveyor-ml[build]==1.2.3'" in text
    assert f"uv pip install --system kfp=={kfp.__version__}" in text  # what the component's own pip finds
    assert " buildah " in text and "ENV BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs" in text
    assert "USER 1000" in text
    fetch_only = Pipeline.model_validate({"steps": {"fetch": {"uses": "fetch-model", "with": {"ref": "m"}}}})
    plain = write_containerfile([fetch_only], tmp_path / "plain", ci, base="localhost/python:3.11").read_text()
    assert "FROM localhost/python:3.11" in plain and "buildah" not in plain
    assert "uv pip install --system conveyor-ml==1.2.3 " in plain
