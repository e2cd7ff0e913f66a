"""The router's settings: the one list of ``conveyor router``'s knobs.

``RouterSettings`` gives ``conveyor router`` its options, the ``CONVEYOR_ROUTER_*`` variables
(the admin token keeps its ``CONVEYOR_ROUTER_TOKEN``, which ``conveyor rollout`` reads too) and
conveyor.yaml's ``router:`` keys.  The payload log's settings are the model server's.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from conveyor.serving.settings import PayloadLogSettings
from conveyor.settings import LogLevel, ProcessSettings, ReadTimeoutSettings


class RouterSettings(ProcessSettings, ReadTimeoutSettings, PayloadLogSettings):
    """Everything ``conveyor router`` reads."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_ROUTER_")
    yaml_section: ClassVar[str | None] = "router"

    service: str = Field(
        "default", description="Service name: the router records its address and routes under it for rollouts."
    )
    data_plane: Literal["embedded", "nginx"] = Field(
        "embedded",
        description="What carries the traffic: this process (every feature, nothing to install) or nginx, "
        "driven by this process (a proxy's cost; answers read only while mirroring or logging payloads).",
    )
    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8080, description="Port clients call.")
    stable: str | None = Field(None, description="URL of the stable backend, e.g. http://127.0.0.1:5000.")
    stable_version: str = Field("", description="Version label of the stable backend.")
    canary: str | None = Field(None, description="URL of a canary backend.")
    canary_version: str = Field("", description="Version label of the canary backend.")
    canary_weight: float = Field(0.0, ge=0, le=100, description="Percent of traffic to the canary.")
    mirror_percent: float = Field(
        0.0, ge=0, le=100, description="Percent of stable's traffic copied to the canary and compared."
    )
    sticky_header: str | None = Field(
        None, description="Request header whose value keeps a client on one backend (e.g. X-User-Id)."
    )
    health_path: str = Field("/v2/health/ready", description="Backend readiness path probed for ejection.")
    health_interval: float = Field(1.0, ge=0.1, description="Seconds between health probes.")
    timeout: float = Field(60.0, ge=0.1, description="Seconds a backend may take to answer.")
    retry: bool = Field(True, description="Retry once on another backend when a connection fails before any answer.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1, description="Largest request body passed on.")
    max_mirrors_in_flight: int = Field(
        32, ge=1, description="Mirrored copies in flight at once; beyond it a copy is dropped and counted."
    )
    admin_token: str | None = Field(
        None,
        min_length=16,  # guessable tokens would undo the rest
        validation_alias="CONVEYOR_ROUTER_TOKEN",
        description="Bearer token the admin API requires [default: on 127.0.0.1, made and stored for local tools].",
        json_schema_extra={"show_default": False},
    )
    state_file: Path | None = Field(
        None, description="Where routes persist across restarts [default: under CONVEYOR_HOME]."
    )
    tls_cert: Path | None = Field(None, description="PEM certificate: serve HTTPS (clients and admin calls verify it).")
    tls_key: Path | None = Field(None, description="PEM private key of --tls-cert.")
    log_level: LogLevel = Field("info", description="debug, info, warning or error.")
