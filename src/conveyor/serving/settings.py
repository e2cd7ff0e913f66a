"""The model server's settings: the one list of ``conveyor serve``'s knobs, and the image's.

``ServeSettings`` is read by ``conveyor serve`` (its options, ``CONVEYOR_SERVE_*`` variables and
conveyor.yaml's ``serve:`` section) and by the image's entry point ``python -m conveyor.serving``
(``ImageServeSettings``: the same fields, bound to every interface, plus the digest it must
match).  A knob added here is an option of both, a variable and a conveyor.yaml key at once.
The payload log's settings are shared with the router (``PayloadLogSettings``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from conveyor.errors import InvalidInput
from conveyor.extras import require
from conveyor.monitoring.retention import Retention
from conveyor.settings import LogLevel, NoDecode, ProcessSettings, ReadTimeoutSettings, split_list

if TYPE_CHECKING:
    from conveyor.serving.payloads import PayloadLogConfig

Fields = Annotated[list[str], NoDecode]  # a variable lists them with commas: text,email


class PayloadLogSettings(Retention):
    """The payload log's settings, the same for ``conveyor serve`` and ``conveyor router``.

    Both log the same records to the same layout (``DEST/<model>/<version>/payloads-*.jsonl``),
    so ``conveyor monitor`` reads either."""

    log_payloads: str | None = Field(
        None,
        description="Log a sample of requests and answers as JSON Lines under this folder or s3://bucket/prefix.",
    )
    log_sample: float = Field(0.1, ge=0.0, le=1.0, description="With --log-payloads: the share of requests logged.")
    log_drop: Fields = Field(
        default_factory=list,
        description="An input field never logged (a column; `text` for a text model's input). Repeatable.",
    )
    log_hash: Fields = Field(
        default_factory=list,
        description="An input field logged as a keyed hash ($CONVEYOR_PAYLOAD_HASH_KEY). Repeatable.",
    )
    log_max_record_kib: int = Field(64, ge=1, description="A larger record keeps its answers and loses its inputs.")
    log_rotate_mib: int = Field(16, ge=1, description="Start a new payload file after this many MiB.")
    log_rotate_seconds: float = Field(
        300.0, ge=1, description="... or after this many seconds (a reader sees whole files only)."
    )

    _split = field_validator("log_drop", "log_hash", mode="before")(split_list)

    def payload_log_config(self, **more: Any) -> PayloadLogConfig | None:
        """The payload log these settings ask for (None: none); a bad one raises InvalidInput."""
        from conveyor.serving.payloads import PayloadLogConfig  # numpy: not at the command's start-up

        if not self.log_payloads:
            return None
        if self.log_payloads.startswith("s3://"):
            require("boto3", extra="s3", for_="--log-payloads s3://...")
        try:
            return PayloadLogConfig(
                self.log_payloads,
                sample=self.log_sample,
                drop=tuple(self.log_drop),
                hash=tuple(self.log_hash),
                max_record_bytes=self.log_max_record_kib * 1024,
                rotate_bytes=self.log_rotate_mib * 1024 * 1024,
                rotate_seconds=self.log_rotate_seconds,
                keep_days=self.log_keep_days,
                keep_mib=self.log_keep_mib,
                **more,
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None


class ServeSettings(ProcessSettings, ReadTimeoutSettings, PayloadLogSettings):
    """Everything a model server process needs; JSON-serialisable, so worker processes receive it."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_SERVE_", protected_namespaces=())
    yaml_section: ClassVar[str | None] = "serve"

    model: str = Field(
        description="A model directory (with model.yaml), an .onnx file, or (conveyor serve) a registry "
        "reference (name, name:version, name@alias).",
        json_schema_extra={"argument": True},
    )
    tokenizer: str | None = Field(
        None, description="tokenizer.json for a bare .onnx file (without it: raw tensors only)."
    )
    spec: str | None = Field(None, description="A model.yaml kept outside the model folder (an inferred spec).")
    name: str | None = Field(None, description="Serve under this model name [default: model.yaml's].")
    model_version: str | None = Field(None, description="Serve as this version [default: model.yaml's].")
    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 for every interface.")
    port: int = Field(5000, description="Port to listen on.")
    workers: int = Field(1, ge=1, description="Server processes sharing the port.")
    threads: int | None = Field(
        None,
        ge=1,
        description="onnxruntime intra-op threads per worker [default: cores / workers].",
        json_schema_extra={"show_default": False},
    )
    device: str = Field("cpu", description="cpu, or cuda (needs onnxruntime-gpu and a GPU).")
    max_batch_size: int = Field(32, ge=1, description="Most texts in one inference batch.")
    max_batch_wait_ms: float = Field(
        0.0, ge=0, description="Longest wait for more requests before a batch starts (0: never wait)."
    )
    parallel_batches: int = Field(
        1, ge=1, description="Batches computed at once, each on its own thread (pair with --threads)."
    )
    slots: int = Field(
        1, ge=1, description="A generative (GGUF) model: answers generated at once, each in its own context."
    )
    context_size: int | None = Field(
        None,
        ge=64,
        description="A generative (GGUF) model: tokens of context per slot, prompt and answer [default: the "
        "model's, at most 4096].",
        json_schema_extra={"show_default": False},
    )
    max_body_bytes: int = Field(1_000_000, ge=1, description="Largest request body accepted.")
    max_items: int = Field(256, ge=1, description="Most texts in one request.")
    graceful_timeout: float = Field(30.0, ge=0, description="Seconds to let in-flight requests finish on SIGTERM.")
    log_level: LogLevel = Field("info", description="debug, info, warning or error.")
    access_log: bool = Field(False, description="Log every request.")
    drift_window: int = Field(
        500,
        ge=0,
        description="With --log-payloads and a version profiled at registration: judge each window of this many "
        "logged items for drift, as gauges on /metrics (0: off).",
    )


class ServeCommandSettings(ServeSettings):
    """``conveyor serve``: every serve setting, plus the signing pin of the consuming side.

    The pin is this machine's (its command line, ``CONVEYOR_REQUIRE_SIGNED`` or conveyor.yaml's
    ``serve.require_signed``), so no change of the registry's own policy relaxes it: the defence
    against a stolen CI token (docs/supply-chain.md).  The image serves a folder checked against
    its digest at build time, so it has no pin of its own."""

    require_signed: bool = Field(
        False,
        validation_alias="CONVEYOR_REQUIRE_SIGNED",
        description="Refuse a version no trusted key signed (--trusted-key), whatever the registry's policy says "
        "(conveyor serve only).",
    )
    trusted_key: Fields = Field(
        default_factory=list,
        description="Public key to trust (repeatable; conveyor serve only) [default: files in $CONVEYOR_TRUSTED_KEYS].",
    )

    _split_keys = field_validator("trusted_key", mode="before")(split_list)


class ImageServeSettings(ServeSettings):
    """``python -m conveyor.serving``: every serve setting, bound to every interface, plus the image's digest."""

    yaml_section: ClassVar[str | None] = None  # an image reads its command line and its variables only

    host: str = Field("0.0.0.0", description="Address to bind; 0.0.0.0 for every interface.")
    expect_digest: str | None = Field(
        None, description="Refuse to start unless the model folder has this version digest."
    )
    omitted_files: str | None = Field(
        None, description="With --expect-digest: a listing of the version's files left out (path, sha256)."
    )
