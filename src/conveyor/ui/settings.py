"""The dashboard's settings: the one list of ``conveyor ui``'s knobs.

``DashboardSettings`` gives ``conveyor ui`` its options, the ``CONVEYOR_UI_*`` variables and
conveyor.yaml's ``ui:`` keys; the registry it shows is ``CONVEYOR_REGISTRY``/``CONVEYOR_TOKEN``,
as for every registry command, and the payload log ``CONVEYOR_PAYLOAD_LOGS``.  How long a login
lasts (``DashboardSessionSettings``) is shared with ``conveyor registry serve --ui``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from conveyor.settings import LogLevel, ProcessSettings, ReadTimeoutSettings


class DashboardSessionSettings(BaseModel):
    """A dashboard login's lifetime, the same for ``conveyor ui`` and ``conveyor registry serve --ui``:
    the session ends when idle too long, and at the latest a fixed time after the login."""

    session_idle_minutes: float = Field(
        30.0,
        gt=0,
        description="A dashboard login unused this long ends (its token is re-checked on every request anyway).",
    )
    session_max_hours: float = Field(
        8.0, gt=0, description="A dashboard login ends this long after it began, used or not."
    )


class DashboardSettings(ProcessSettings, ReadTimeoutSettings, DashboardSessionSettings):
    """Everything ``conveyor ui`` reads."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_UI_")
    yaml_section: ClassVar[str | None] = "ui"

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 for every interface.")
    port: int = Field(8600, description="Port to listen on.")
    registry: str | None = Field(
        None,
        validation_alias="CONVEYOR_REGISTRY",
        description="Registry: http(s) URL, database URL or folder [default: the local one under CONVEYOR_HOME].",
        json_schema_extra={"show_default": False},
    )
    token: str | None = Field(
        None,
        validation_alias="CONVEYOR_TOKEN",
        description="Bearer token for a registry server.",
        json_schema_extra={"show_default": False},
    )
    require_login: bool = Field(False, description="Reading needs a registry token too, not only acting.")
    log_level: LogLevel = Field("warning", description="debug, info, warning or error.")
    payload_logs: str | None = Field(
        None,
        validation_alias="CONVEYOR_PAYLOAD_LOGS",
        description="The payload log the servers or the router write (--log-payloads DEST): version and rollout "
        "pages then show their served traffic against the reference, drift and live quality.",
    )
    drift_window: int = Field(
        500, ge=10, description="With --payload-logs: logged items per window, as `conveyor monitor`."
    )
    drift_since: str | None = Field(
        "1d",
        description="With --payload-logs: judge the traffic logged since then (a duration back, 1d, 7d, or an ISO "
        "time), as `conveyor monitor --since`; none: all of the log.",
    )
    drift_window_time: str | None = Field(
        None,
        description="With --payload-logs: windows of this much time (1h, 1d) instead of --drift-window items, "
        "as `conveyor monitor --window-time`.",
    )
