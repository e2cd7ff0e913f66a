"""Reading a payload log back: the finished JSON Lines files of one model version, in time order.

Local folders and ``s3://bucket/prefix`` alike (the layout ``serving/payloads.py`` writes:
``<model>/<version>/payloads-<UTC time>-<pid>-<n>.jsonl``).  Files still being written end in
``.partial`` and are skipped.  Each line is read as a typed record of whichever version wrote it
(``serving/payload_record.py``); a line that is not one (a torn copy, a foreign file) is counted,
not fatal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from conveyor.errors import NotFound
from conveyor.extras import needs
from conveyor.serving.payload_record import PayloadRecord, read_record


@dataclass
class LogReader:
    destination: str
    model: str
    version: str
    unreadable: int = 0
    files: int = 0

    def records(self) -> Iterator[PayloadRecord]:
        for _name, text in self._files():
            self.files += 1
            yield from self.parse(text)

    def parse(self, text: str | bytes) -> Iterator[PayloadRecord]:
        """One file's lines as records (a line that is not one is counted in ``unreadable``)."""
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = read_record(line)
            except ValueError:
                self.unreadable += 1
                continue
            yield record

    def _files(self) -> Iterator[tuple[str, str]]:
        if self.destination.startswith("s3://"):
            yield from self._s3_files()
            return
        folder = Path(self.destination).expanduser() / self.model / self.version
        if not folder.is_dir():
            raise NotFound(f"no payload log for {self.model}:{self.version} under {self.destination} ({folder})")
        for path in sorted(folder.glob("payloads-*.jsonl"), key=lambda p: _order(p.name)):
            yield path.name, path.read_text()

    def _s3_files(self) -> Iterator[tuple[str, str]]:
        with needs("s3", "payload logs on S3"):
            import boto3

        parsed = urlparse(self.destination)
        prefix = "/".join(p for p in (parsed.path.strip("/"), self.model, self.version) if p) + "/"
        endpoint = os.environ.get("CONVEYOR_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        client = boto3.client("s3", endpoint_url=endpoint)
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl")]
        if not keys:
            raise NotFound(f"no payload log for {self.model}:{self.version} under {self.destination}")
        for key in sorted(keys, key=lambda k: _order(k.rsplit("/", 1)[-1])):
            body = client.get_object(Bucket=parsed.netloc, Key=key)["Body"].read().decode()
            yield key, body


def _order(name: str) -> tuple[str, int, str]:
    """payloads-<time>-<pid>-<n>.jsonl: by time, then sequence (several workers interleave by time)."""
    parts = name.removesuffix(".jsonl").split("-")
    return (parts[1] if len(parts) > 1 else "", int(parts[-1]) if parts[-1].isdigit() else 0, name)
