"""The reference model's ground truth: fetched once, and never read half-unpacked.

CI once trained on 3,610 snippets instead of 22,000: a second test worker saw the unpacked
folder appear while the first was still extracting it, and read only the first file.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path

import pytest
from examples.sentiment import data

FILES = {f"source{n}_GroundTruth.txt": 400 for n in range(4)}


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def fake_sdist(data_dir: Path) -> None:
    """vaderSentiment-3.3.2.tar.gz holding the inner ground-truth archive, as the real sdist does."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as archive:
        for name, rows in FILES.items():
            lines = "".join(f"{name}_{i}\t{1.5 if i % 2 else -2.0}\tsnippet {i} \n" for i in range(rows))
            _add(archive, f"hutto_ICWSM_2014/{name}", lines.encode())
    data_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(data_dir / "vaderSentiment-3.3.2.tar.gz", "w:gz") as sdist:
        _add(sdist, f"vaderSentiment-3.3.2/{data.GROUND_TRUTH_ARCHIVE}", inner.getvalue())


def count_snippets(data_dir: Path) -> int:
    texts, _, _ = data.read_ground_truth(data.fetch(data_dir))
    return len(texts)


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpacking takes a while per file, as it does on a busy runner, so the others arrive mid-way."""
    real_extract = tarfile.TarFile.extract

    def extractall(self: tarfile.TarFile, path: str | Path = ".", members=None, *, numeric_owner=False, filter=None):
        for member in self.getmembers():
            real_extract(self, member, path, filter=filter)
            time.sleep(0.05)

    monkeypatch.setattr(tarfile.TarFile, "extractall", extractall)


def test_workers_fetching_at_once_all_read_the_whole_ground_truth(tmp_path: Path, slow_disk: None) -> None:
    fake_sdist(tmp_path)
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(count_snippets(tmp_path))) for _ in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(30)
    assert counts == [sum(FILES.values())] * 4
    assert not list(tmp_path.glob(".vader-*")), "staging folders are cleaned up"
