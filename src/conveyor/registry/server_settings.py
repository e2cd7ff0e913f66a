"""The registry server's settings: the one list of ``conveyor registry serve``'s knobs.

``RegistryServerSettings`` gives the command its options, the ``CONVEYOR_REGISTRY_SERVER_*``
variables and conveyor.yaml's ``registry_server:`` keys.  Where the registry keeps its data
stays ``CONVEYOR_DATABASE_URL`` and ``CONVEYOR_BLOB_STORE``, as for every registry command.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from conveyor.settings import LogLevel, ProcessSettings, ReadTimeoutSettings
from conveyor.ui.settings import DashboardSessionSettings


class RegistryServerSettings(ProcessSettings, ReadTimeoutSettings, DashboardSessionSettings):
    """Everything ``conveyor registry serve`` reads."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_REGISTRY_SERVER_")
    yaml_section: ClassVar[str | None] = "registry_server"

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8700, description="Port to listen on.")
    database: str | None = Field(
        None,
        validation_alias="CONVEYOR_DATABASE_URL",
        description="sqlite:///path or postgresql://... [default: $CONVEYOR_HOME/registry.db]",
    )
    blob_store: str | None = Field(
        None,
        validation_alias="CONVEYOR_BLOB_STORE",
        description="A folder or s3://bucket/prefix [default: $CONVEYOR_HOME/blobs]",
    )
    insecure_no_auth: bool = Field(False, description="Serve without tokens (only for a trusted loopback).")
    tls_cert: Path | None = Field(
        None, description="PEM certificate: serve HTTPS, so tokens never cross the network in clear."
    )
    tls_key: Path | None = Field(None, description="PEM private key of --tls-cert.")
    log_level: LogLevel = Field("info", description="debug, info, warning or error.")
    ui: bool = Field(
        False, description="Also serve the dashboard at /ui (log in with a token unless --insecure-no-auth)."
    )
