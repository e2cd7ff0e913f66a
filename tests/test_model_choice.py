"""``conveyor serve tickets`` with a folder ``tickets`` here and a registered model ``tickets``: the choice is said.

In-process: the rule (serving/model_choice.py) that ``conveyor serve`` and ``conveyor init``'s
contract recording (verify/targets.serve_model) share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.registry.config import open_local
from conveyor.serving.model_choice import Choice, choose
from tests import models


@pytest.fixture
def tickets(conveyor_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registered model ``tickets`` (version 1), and a working folder to make a local ``tickets`` in."""
    folder = models.model_dir(tmp_path / "built", "tickets", models.word_vote_model)
    open_local().register(folder, "tickets")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder


def test_a_project_folder_named_like_the_model_serves_the_registered_model_and_says_so(tickets: Path) -> None:
    Path("tickets").mkdir()
    (Path("tickets") / "train.py").write_text("print('training')\n")
    choice = choose("tickets")
    assert (choice.target, choice.from_registry) == ("tickets:1", True)
    assert choice.notice is not None
    assert "both the folder ./tickets (no model in it) and the registered model tickets" in choice.notice
    assert "serving the registered tickets:1" in choice.notice


def test_a_model_folder_named_like_the_model_is_served_and_the_registered_one_is_named(tickets: Path) -> None:
    shutil.copytree(tickets, "tickets")
    choice = choose("tickets")
    assert (choice.target, choice.from_registry) == ("tickets", False)
    assert choice.notice is not None and "serving the folder ./tickets" in choice.notice
    assert "tickets:1, or tickets@ALIAS" in choice.notice


def test_explicit_forms_and_unambiguous_names_choose_silently(tickets: Path) -> None:
    shutil.copytree(tickets, "tickets")
    shutil.copytree(tickets, "other")
    assert choose("./tickets") == Choice("./tickets", False)
    assert choose("tickets:1") == Choice("tickets:1", True)
    assert choose("tickets@production") == Choice("tickets@production", True)
    assert choose("other") == Choice("other", False)  # no registered model "other": the folder, as before
    shutil.rmtree("tickets")
    assert choose("tickets") == Choice("tickets", True)  # no folder: the registry, as before
