"""Generative versions in the registry: a GGUF file registered with what it says of itself, a prompt-only
change as a new version that reuses the weights' blob by digest, and ``models diff`` showing it.  A GGUF
file of a few hundred bytes stands in for the weights (the journey registers SmolLM2 itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.registry.config import open_local
from tests.smollm import tiny_gguf

GGUF_NAME = "tiny.gguf"

runner = CliRunner()


def conveyor(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One registry with chat:1, a GGUF file registered as a user does."""
    path = tmp_path_factory.mktemp("home")
    model = tiny_gguf(tmp_path_factory.mktemp("weights") / GGUF_NAME)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVEYOR_HOME", str(path))
        for name in ("CONVEYOR_REGISTRY", "CONVEYOR_TOKEN", "CONVEYOR_BLOB_STORE"):
            patch.delenv(name, raising=False)
        code, output = conveyor("models", "register", str(model), "--name", "chat")
    assert code == 0, output
    assert "architecture llama, context_length 2048, quantisation Q4_1, chat_template yes" in output
    return path


@pytest.fixture
def registry_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    for name in ("CONVEYOR_REGISTRY", "CONVEYOR_TOKEN", "CONVEYOR_BLOB_STORE"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_a_gguf_file_is_a_text_generation_version_with_its_metadata(registry_home: Path) -> None:
    version = open_local().resolve("chat:1")
    assert (version.framework, version.framework_version) == ("gguf", "v3")
    assert version.properties == {
        "gguf.architecture": "llama",
        "gguf.context_length": "2048",
        "gguf.quantisation": "Q4_1",
        "gguf.chat_template": "yes",
    }
    assert {f.path for f in version.files} == {GGUF_NAME, "generation.yaml", "model.yaml"}
    spec = yaml.safe_load(b"".join(open_local().open_blob(_file(version, "model.yaml"))))
    assert spec["task"] == "text-generation" and spec["model_file"] == GGUF_NAME
    assert spec["gguf"]["architecture"] == "llama" and "<|im_start|>" in spec["gguf"]["chat_template"]


def _file(version: object, path: str) -> str:
    return next(f.sha256 for f in version.files if f.path == path)  # type: ignore[attr-defined]


def test_a_prompt_change_is_a_new_version_reusing_the_weights_blob(registry_home: Path, tmp_path: Path) -> None:
    blobs = sorted(p.name for p in (registry_home / "blobs").rglob("*") if p.is_file())
    config = tmp_path / "cfg.yaml"
    config.write_text("system_prompt: Answer in French.\ntemperature: 0.2\nstop: ['\\n\\n']\n")
    code, output = conveyor(
        "models", "register", "--from", "chat:1", "--generation-config", str(config), "--alias", "candidate", "--json"
    )
    assert code == 0, output
    new = open_local().resolve("chat@candidate")
    old = open_local().resolve("chat:1")
    assert new.lineage.derived_from == "chat:1" and json.loads(output)["version"] == new.version
    assert _file(new, GGUF_NAME) == _file(old, GGUF_NAME) and _file(new, "model.yaml") == _file(old, "model.yaml")
    added = sorted(p.name for p in (registry_home / "blobs").rglob("*") if p.is_file())
    assert len(added) == len(blobs) + 1  # the new generation.yaml only: no copy of the weights

    code, output = conveyor("models", "diff", "chat:1", f"chat:{new.version}")
    assert code == 0, output
    assert f"same     {GGUF_NAME}" in output and "changed  generation.yaml" in output
    assert "+system_prompt: Answer in French." in output and "+temperature: 0.2" in output


def test_a_generation_config_is_checked_before_anything_is_stored(registry_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("temperature: hot\nsystem_promt: typo\n")
    code, output = conveyor("models", "register", "--from", "chat:1", "--generation-config", str(config))
    assert code == 2 and "temperature" in output and "system_promt" in output
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not a model")
    code, output = conveyor("models", "register", "--from", "chat:1")
    assert code == 2 and "--generation-config" in output


def test_only_a_generative_version_takes_a_generation_config(
    registry_home: Path, tmp_path: Path, vote_model: Path
) -> None:
    code, output = conveyor("models", "register", str(vote_model), "--name", "votes")
    assert code == 0, output
    config = tmp_path / "cfg.yaml"
    config.write_text("temperature: 0\n")
    code, output = conveyor("models", "register", "--from", "votes:1", "--generation-config", str(config))
    assert code == 2 and "no generative version" in output


def test_a_file_that_only_ends_in_gguf_is_refused(registry_home: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\x00" * 64)
    code, output = conveyor("models", "register", str(fake), "--name", "fake")
    assert code == 2 and "fake.gguf" in output
