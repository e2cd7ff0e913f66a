"""The payload log's S3 side: one finished file, one ``put_object``, with short timeouts.

Imported only when a server logs to ``s3://``: boto3 is not in a served image unless asked for.
botocore's own retry (``standard`` mode, two tries, backoff with jitter) rides out a blip; a file
that still fails stays in the spool and is tried again later (``serving/payload_sinks.py``).  A
dead endpoint costs the writer thread a few seconds per try (connect 2 s, read 10 s), never a
request: the records queued meanwhile are dropped and counted only when the queue is full.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from conveyor.extras import needs


class S3Uploader:
    def __init__(self, url: str, folder: str) -> None:
        with needs("s3", "payload logs on S3"):
            import boto3
            from botocore.config import Config
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ValueError(f"invalid payload log destination {url!r}: expected s3://bucket/prefix")
        self.bucket = parsed.netloc
        self.prefix = "/".join(p for p in (parsed.path.strip("/"), folder) if p)
        endpoint = os.environ.get("CONVEYOR_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
        self.client = boto3.client("s3", endpoint_url=endpoint, config=config)

    def upload(self, path: Path) -> None:
        with open(path, "rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{path.name}", Body=body)
