"""Prepare: fetch VADER's human-rated ground truth and split it.

The data is the ground truth of Hutto & Gilbert (ICWSM 2014), shipped inside
the vaderSentiment source distribution: 23,703 snippets from movie reviews,
tweets, Amazon reviews and NYT editorials, each with a mean rating in -4..+4.
A rating above zero is positive; exact zeros are dropped.  It is downloaded at
run time with pip (never committed).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from examples.sentiment.cache import locked

VADER_SDIST = "vaderSentiment==3.3.2"
GROUND_TRUTH_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[int]  # 1 = positive


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    digest: str  # sha256 of the ground-truth files, for lineage
    vader_source: Path  # the unpacked sdist, for the lexicon baseline


def fetch(data_dir: Path) -> Path:
    """Download and unpack the vaderSentiment sdist once; returns the unpacked folder.

    Several processes fetch at once (test workers, a pipeline beside a build): the first one
    downloads under a lock while the others wait, and the sdist is unpacked into a staging
    folder renamed into place only when complete, so nobody reads a half-unpacked ground truth.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    unpacked = data_dir / "vaderSentiment-3.3.2"
    with locked(unpacked):
        if (unpacked / "hutto_ICWSM_2014").is_dir():
            return unpacked
        archives = list(data_dir.glob("vaderSentiment-3.3.2.tar.gz"))
        if not archives:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    "-d",
                    str(data_dir),
                    VADER_SDIST,
                ],
                check=True,
            )
            archives = list(data_dir.glob("vaderSentiment-3.3.2.tar.gz"))
        staging = Path(tempfile.mkdtemp(prefix=".vader-", dir=data_dir))
        try:
            with tarfile.open(archives[0]) as sdist:
                sdist.extractall(staging, filter="data")
            source = staging / unpacked.name
            with tarfile.open(source / GROUND_TRUTH_ARCHIVE) as inner:
                inner.extractall(source, filter="data")
            shutil.rmtree(unpacked, ignore_errors=True)  # an earlier, incomplete unpack
            source.rename(unpacked)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return unpacked


def read_ground_truth(unpacked: Path) -> tuple[list[str], list[int], str]:
    """All rated snippets with a non-zero rating, and a digest of the files read."""
    texts: list[str] = []
    labels: list[int] = []
    digest = hashlib.sha256()
    for path in sorted((unpacked / "hutto_ICWSM_2014").glob("*_GroundTruth.txt")):
        raw = path.read_bytes()
        digest.update(raw)
        for line in raw.decode("utf-8", errors="replace").splitlines():
            parts = line.rstrip("\r").split("\t")
            if len(parts) < 3:
                continue
            rating = float(parts[1])
            if rating == 0:
                continue
            texts.append(parts[2])
            labels.append(1 if rating > 0 else 0)
    return texts, labels, digest.hexdigest()


def prepare(data_dir: Path, test_size: float = 0.2, seed: int = 42) -> Dataset:
    """Fetch, read and split (stratified) the ground truth."""
    from sklearn.model_selection import train_test_split

    unpacked = fetch(data_dir)
    texts, labels, digest = read_ground_truth(unpacked)
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    return Dataset(Split(train_x, train_y), Split(test_x, test_y), digest, unpacked)
