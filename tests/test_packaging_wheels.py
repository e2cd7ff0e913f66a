"""The image's wheelhouse: a wheel is reused only for its own platform, and a full cache needs no index."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError
from conveyor.packaging import requirements
from conveyor.packaging.requirements import Pin, download_wheels

AMD64 = "orjson-3.13.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
ARM64 = "orjson-3.13.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
PURE = "pyyaml_env-1.0-py3-none-any.whl"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    for name in (AMD64, ARM64, PURE):
        (folder / name).write_bytes(name.encode())
    return folder


def _no_pip(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError(f"pip was run although every wheel is cached: {args}")


def test_a_full_cache_is_used_without_pip_and_each_platform_gets_its_own_wheel(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "run", _no_pip)
    pins = [Pin("orjson", "3.13.0"), Pin("pyyaml-env", "1.0")]
    for platform, wanted in (("linux/amd64", AMD64), ("linux/arm64", ARM64)):
        dest = tmp_path / platform.replace("/", "-")
        done = download_wheels(pins, dest, platform, cache=cache)
        assert [p.wheel for p in done] == [wanted, PURE]
        assert done[0].sha256 == hashlib.sha256(wanted.encode()).hexdigest()
        assert sorted(p.name for p in dest.iterdir()) == sorted([wanted, PURE])


def test_only_the_missing_pins_are_downloaded(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[Pin]] = []

    def fake_download(pins: list[Pin], target: Path, platform: str) -> None:
        # the one boundary faked here: PyPI
        asked.append(pins)
        (target / "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl").write_bytes(b"numpy")

    monkeypatch.setattr(requirements, "_pip_download", fake_download)
    done = download_wheels([Pin("orjson", "3.13.0"), Pin("numpy", "2.4.6")], tmp_path / "dest", cache=cache)
    assert asked == [[Pin("numpy", "2.4.6")]]
    assert [p.name for p in done] == ["orjson", "numpy"]


def test_a_pin_without_a_wheel_for_the_platform_is_named(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requirements, "_pip_download", lambda pins, target, platform: None)
    with pytest.raises(ConveyorError, match=re.escape("no wheel of numpy==2.4.6 for the image's platform")):
        download_wheels([Pin("numpy", "2.4.6")], tmp_path / "dest", cache=cache)
