"""The reference model's result cache: computed once by whoever asks first, read by the rest."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from examples.sentiment import cache


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    return tmp_path


def test_two_callers_at_once_compute_once_and_both_get_the_result(cache_dir: Path) -> None:
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        time.sleep(0.3)  # long enough for the other thread to arrive while this one holds the lock
        return b"result"

    results: list[bytes] = []

    def ask() -> None:
        results.append(cache.cached("key.bin", slow, lambda b: b, lambda b: b))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [b"result", b"result"]
    assert len(calls) == 1
    assert (cache_dir / "key.bin").read_bytes() == b"result"


def test_a_failed_computation_leaves_nothing_cached(cache_dir: Path) -> None:
    def broken() -> bytes:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.cached("key.bin", broken, lambda b: b, lambda b: b)
    assert not (cache_dir / "key.bin").exists()
    assert cache.cached("key.bin", lambda: b"second try", lambda b: b, lambda b: b) == b"second try"


def test_the_key_changes_with_any_file_byte(tmp_path: Path) -> None:
    import hashlib

    (tmp_path / "a").write_bytes(b"one")
    first = cache.files_digest(hashlib.sha256(), [tmp_path / "a"]).hexdigest()
    (tmp_path / "a").write_bytes(b"two")
    assert cache.files_digest(hashlib.sha256(), [tmp_path / "a"]).hexdigest() != first
