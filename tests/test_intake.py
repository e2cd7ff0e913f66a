"""Intake: what cannot be served is refused at registration, naming the file; a bare ONNX folder serves.

Through the ``conveyor`` command, as a user registers: a text file named model.onnx, a lone
.txt, a model.yaml that does not hold, a spec naming a missing file; each is refused with exit 2
and nothing is stored, while ``--no-check`` keeps the old store-anything behaviour.  The folder of
``model.onnx`` + ``tokenizer.json`` that register and build accept serves with ``conveyor serve
FOLDER`` too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from tests.conftest import start_server
from tests.registry_fixtures import run_cli


def _models() -> list[dict]:  # type: ignore[type-arg]
    return json.loads(run_cli("models", "list", "--json", check=True).stdout)


def test_files_that_cannot_be_served_are_refused_at_registration_naming_the_file(
    conveyor_home: Path, vote_model: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "model.onnx").write_text("not onnx\n")  # 9 bytes
    refused = run_cli("models", "register", str(fake), "--name", "fake")
    assert refused.returncode == 2, refused.stderr
    assert "model.onnx is not an ONNX model" in refused.stderr and "Traceback" not in refused.stderr

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    lone = run_cli("models", "register", str(notes), "--name", "notes")
    assert lone.returncode == 2 and "nothing here can be served (notes.txt): no .onnx file" in lone.stderr

    bad_spec = tmp_path / "bad-spec"
    shutil.copytree(vote_model, bad_spec)
    (bad_spec / "model.yaml").write_text("name: votes\nlabels: [only-one]\n")
    spec = run_cli("models", "register", str(bad_spec), "--name", "votes")
    assert spec.returncode == 2 and "model.yaml does not hold: labels" in spec.stderr

    (bad_spec / "model.yaml").write_text("name: votes\nmodel_file: missing.onnx\n")
    missing = run_cli("models", "register", str(bad_spec), "--name", "votes")
    assert missing.returncode == 2 and "model.yaml names missing.onnx" in missing.stderr

    broken_tokenizer = tmp_path / "broken-tokenizer"
    shutil.copytree(vote_model, broken_tokenizer)
    (broken_tokenizer / "tokenizer.json").write_text("{}")
    tokenizer = run_cli("models", "register", str(broken_tokenizer), "--name", "votes")
    assert tokenizer.returncode == 2 and "tokenizer.json is not a tokenizers tokenizer.json" in tokenizer.stderr

    assert _models() == [], "a refused registration stored a model"
    blobs = conveyor_home / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.rglob("*")), "a refused registration stored files"

    stored = run_cli("models", "register", str(notes), "--name", "notes", "--no-check", "--json", check=True)
    assert json.loads(stored.stdout)["files"][0]["path"] == "notes.txt"
    assert run_cli("models", "register", str(vote_model), "--name", "votes").returncode == 0


def test_a_folder_without_model_yaml_serves_as_register_and_build_take_it(vote_model: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare-votes"
    bare.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(vote_model / name, bare / name)
    server = start_server(bare, tmp_path=tmp_path)
    try:
        answer = httpx.post(f"{server.url}/predict", json=["good good good"], timeout=10)
        assert answer.status_code == 200 and answer.json() == {"positive": True}
        assert httpx.get(f"{server.url}/v2/models/bare-votes", timeout=10).status_code == 200
    finally:
        server.stop()
