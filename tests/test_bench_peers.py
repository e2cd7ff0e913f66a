"""The serving benchmark's helpers: each peer's environment (kept by the digest of its pins) and the report's math.

The peers themselves (MLServer, BentoML, the raw-ASGI batcher) are benchmarks only and never run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.peers import venv
from benchmarks.serving.peers import PEERS, ratio_rows
from benchmarks.tabular.__main__ import verdict


def test_a_peer_environment_is_named_by_its_pins_and_a_changed_pin_makes_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pins = tmp_path / "pins"
    pins.mkdir()
    (pins / "server.txt").write_text("server==1.0\n")
    monkeypatch.setattr(venv, "PINS", pins)
    first = venv.venv_dir("server", tmp_path / "cache")
    assert first.parent == tmp_path / "cache" and first.name.startswith("server-")
    assert venv.venv_dir("server", tmp_path / "cache") == first
    (pins / "server.txt").write_text("server==1.1\n")
    assert venv.venv_dir("server", tmp_path / "cache") != first


def test_a_made_environment_is_reused_without_installing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(venv.CACHE_VARIABLE, str(tmp_path))
    folder = venv.venv_dir("mlserver")
    folder.mkdir(parents=True)
    (folder / venv.READY).write_text("")

    def no_install(*args: object, **kwargs: object) -> None:
        raise AssertionError("a ready environment was installed again")

    monkeypatch.setattr(venv.subprocess, "run", no_install)
    assert venv.peer_python("mlserver") == folder / "bin" / "python"


def test_every_peer_has_its_pins_and_reads_its_own_answer() -> None:
    for name, peer in PEERS.items():
        assert (venv.PINS / f"{peer.venv}.txt").is_file(), name
    labels = ["negative", "positive"]
    mlserver = {"outputs": [{"name": "label", "datatype": "BYTES", "shape": [1, 1], "data": ["positive"]}]}
    assert PEERS["mlserver"].label(mlserver, labels) == "positive"
    assert PEERS["bentoml"].label(["negative"], labels) == "negative"
    assert PEERS["reference"].label({"positive": False}, labels) == "negative"
    assert PEERS["reference"].label([{"positive": True}], labels) == "positive"
    assert PEERS["reference"].label([{"label": "negative", "score": 0.9}], labels) == "negative"


def test_ratios_are_taken_within_each_round_then_the_median_and_range() -> None:
    conveyor = [{1: 100.0, 32: 400.0}, {1: 90.0, 32: 300.0}, {1: 120.0, 32: 500.0}]
    peer = [{1: 50.0, 32: 400.0}, {1: 90.0, 32: 150.0}, {1: 60.0, 32: 1000.0}]
    rows = ratio_rows(conveyor, peer, (1, 32))
    assert rows[1] == (2.0, 1.0, 2.0)
    assert rows[32] == (1.0, 0.5, 2.0)  # not 400 / 400, the quotient of the medians


def test_a_target_is_judged_pass_or_miss_by_its_bound() -> None:
    assert verdict(1.42, "<= 1.5") == "PASS"
    assert verdict(1.51, "<= 1.5") == "MISS"
    assert verdict(2.5, ">= 2 (aim 3)") == "PASS"
    assert verdict(30.0, "(lower is better)") == ""
