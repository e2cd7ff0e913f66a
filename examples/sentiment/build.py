"""Build the reference model: prepare -> train -> evaluate -> export, cached.

    python -m examples.sentiment --out models/sentiment

The model directory is written to a temporary folder and moved into place only
after the evaluation gate passed, so an interrupted or failed build leaves the
previous model untouched.  A stamp records the code digest: a second run with
unchanged code reuses the model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from examples.sentiment.cache import locked
from examples.sentiment.data import prepare
from examples.sentiment.evaluate import evaluate
from examples.sentiment.export import export
from examples.sentiment.train import ENCODER_CODE, train

STAMP = "build.json"
MIN_ACCURACY = 0.75


def code_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([*Path(__file__).parent.glob("*.py"), *ENCODER_CODE]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached(out_dir: Path) -> dict | None:
    stamp = out_dir / STAMP
    if not stamp.is_file() or not (out_dir / "model.onnx").is_file():
        return None
    record = json.loads(stamp.read_text())
    return record if record.get("code_digest") == code_digest() else None


def build(out_dir: Path, data_dir: Path, force: bool = False, min_accuracy: float = MIN_ACCURACY) -> dict:
    """The model in OUT_DIR, built unless it is cached; two builds of one folder at once build it once."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with locked(out_dir):
        return _build(out_dir, data_dir, force, min_accuracy)


def _build(out_dir: Path, data_dir: Path, force: bool, min_accuracy: float) -> dict:
    if not force and (record := cached(out_dir)):
        print(f"reference model is cached in {out_dir} (accuracy {record['metrics']['accuracy']:.4f})")
        return record
    started = time.monotonic()
    print("prepare: fetching VADER ground truth ...", flush=True)
    data = prepare(data_dir)
    print(f"prepare: {len(data.train.texts)} train / {len(data.test.texts)} test snippets", flush=True)
    print("train: embedding with MiniLM-L6 and fitting logistic regression ...", flush=True)
    head = train(data.train.texts, data.train.labels)
    print(f"train: done in {head.seconds:.0f}s (train accuracy {head.train_accuracy:.4f})", flush=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sentiment-", dir=out_dir.parent))
    try:
        export(head, staging)
        print("evaluate: held-out split through the exported ONNX graph ...", flush=True)
        result = evaluate(staging, data.test, data.vader_source)
        print(f"evaluate: model accuracy        {result.accuracy:.4f}")
        print(f"evaluate: VADER lexicon baseline {result.vader_accuracy:.4f}")
        print(f"evaluate: majority class         {result.majority_accuracy:.4f}")
        if result.accuracy < min_accuracy or result.accuracy <= result.vader_accuracy:
            raise SystemExit(
                f"quality gate failed: accuracy {result.accuracy:.4f} must be >= {min_accuracy} "
                f"and beat VADER's {result.vader_accuracy:.4f}"
            )
        record = {
            "code_digest": code_digest(),
            "data_digest": data.digest,
            "metrics": result.as_dict(),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (staging / STAMP).write_text(json.dumps(record, indent=2))
        (staging / "metrics.json").write_text(json.dumps(result.as_dict(), indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"export: {out_dir} ({record['build_seconds']}s)")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.sentiment", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/sentiment"), help="model directory to write")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where the VADER data is cached")
    parser.add_argument("--force", action="store_true", help="rebuild even if a cached model exists")
    parser.add_argument("--min-accuracy", type=float, default=MIN_ACCURACY)
    args = parser.parse_args(argv)
    build(args.out, args.data_dir, args.force, args.min_accuracy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
