"""The model server's entry point inside an image: ``python -m conveyor.serving /model``.

Imports only the serving code (no registry, no CLI), and with ``--expect-digest``
refuses to start unless the model files hash to the version digest the image
was built from.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from conveyor.digest import digest_of_pairs, folder_pairs, read_pairs
from conveyor.errors import ConveyorError
from conveyor.serving.payloads import PayloadLogConfig
from conveyor.serving.server import ServeConfig, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor.serving", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="model folder (with model.yaml, or served with --spec)")
    parser.add_argument("--spec", default=None, help="model.yaml kept outside the folder (an inferred spec)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--name", default=None, help="serve under this model name [default: model.yaml's]")
    parser.add_argument(
        "--model-version",
        default=None,
        help="serve as this version [default: model.yaml's]; images pass the registry's",
    )
    parser.add_argument("--expect-digest", help="refuse to start unless the model folder has this version digest")
    parser.add_argument(
        "--omitted-files", help="with --expect-digest: a listing of the version's files left out (path, sha256)"
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-payloads", metavar="DEST", help="log a sample of requests and answers under DEST")
    parser.add_argument("--log-sample", type=float, default=0.1, help="with --log-payloads: the share logged")
    args = parser.parse_args(argv)
    payload_log = None
    if args.log_payloads:
        try:
            payload_log = asdict(PayloadLogConfig(args.log_payloads, sample=args.log_sample))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.expect_digest:
        pairs = folder_pairs(Path(args.model)) + (read_pairs(Path(args.omitted_files)) if args.omitted_files else [])
        actual = digest_of_pairs(pairs)
        if actual != args.expect_digest:
            print(
                f"error: model files in {args.model} hash to sha256:{actual}, but this image was built for "
                f"sha256:{args.expect_digest}; refusing to serve a model that is not the registered one",
                file=sys.stderr,
            )
            return 1
        print(f"model digest sha256:{actual} verified", file=sys.stderr, flush=True)
    config = ServeConfig(
        model=args.model,
        spec=args.spec,
        name=args.name,
        version=args.model_version,
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        max_batch_size=args.max_batch_size,
        log_level=args.log_level,
        payload_log=payload_log,
    )
    try:
        return serve(config)
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
