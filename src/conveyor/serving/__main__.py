"""The model server's entry point inside an image: ``python -m conveyor.serving /model``.

Its options are ``conveyor serve``'s, derived from the same settings model
(:class:`~conveyor.serving.settings.ImageServeSettings`), as are its ``CONVEYOR_SERVE_*``
variables; it binds every interface by default.  Imports only the serving code (no registry,
no CLI), and with ``--expect-digest`` refuses to start unless the model files hash to the
version digest the image was built from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conveyor.digest import digest_of_pairs, folder_pairs, read_pairs
from conveyor.errors import ConveyorError
from conveyor.serving.server import serve
from conveyor.serving.settings import ImageServeSettings
from conveyor.settings import add_arguments


def parser() -> argparse.ArgumentParser:
    """The entry point's options: one per field of ImageServeSettings."""
    built = argparse.ArgumentParser(prog="python -m conveyor.serving", description=__doc__.split("\n")[0])
    add_arguments(built, ImageServeSettings)
    return built


def main(argv: list[str] | None = None) -> int:
    given = vars(parser().parse_args(argv))
    try:
        settings = ImageServeSettings.load(given)
        settings.payload_log_config()  # a bad payload log is one line before anything starts
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.expect_digest:
        listed = read_pairs(Path(settings.omitted_files)) if settings.omitted_files else []
        actual = digest_of_pairs(folder_pairs(Path(settings.model)) + listed)
        if actual != settings.expect_digest:
            print(
                f"error: model files in {settings.model} hash to sha256:{actual}, but this image was built for "
                f"sha256:{settings.expect_digest}; refusing to serve a model that is not the registered one",
                file=sys.stderr,
            )
            return 1
        print(f"model digest sha256:{actual} verified", file=sys.stderr, flush=True)
    try:
        return serve(settings)
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
